"""The evaluation data fetched by the project: a real archive served on 127.0.0.1, real Dagster, real DuckDB.

Every fault must leave nothing half-written under the data home (no data directory, no temporary
directory, no archive; only a `.partial` a server with range support lets the next run resume),
and a later good run must succeed.
"""

import hashlib
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from culture_assets.assets.evaluation import eval_dataset, evaluation_data
from culture_assets.evaluation import download
from culture_assets.evaluation.download import (
    EVAL_DATA_URL_ENV, EvalDataDownloadError, RECORD_FILE, download_evaluation_data, downloaded_data_dir,
)
from culture_assets.evaluation.loader import EVAL_DATA_ENV
from culture_assets.evaluation.manifest import MANIFESTS_ENV, load_manifests
from culture_assets.resources.evaluation import EvalDataResource
from culture_assets.io_manager import ArtifactIOManager
from culture_assets.profiles import Profile, preflight
from culture_assets.resources import WarehouseResource
from culture_assets.store import Warehouse
from culture_assets_tests.dagster_dev import free_port
from culture_assets_tests.eval_archive import EvalArchive, EvalArchiveServer, build_eval_archive


@pytest.fixture(scope="module")
def synthetic_archive(tmp_path_factory) -> EvalArchive:
    """Small synthetic datasets for the fault tests (fast, and the same whether or not the reference copy is here)."""
    return build_eval_archive(tmp_path_factory.mktemp("synthetic_archive"), cultures=("english",))


@pytest.fixture
def server(synthetic_archive):
    with EvalArchiveServer(synthetic_archive) as running:
        yield running


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(download, "RETRY_BACKOFF_S", 0.0)


def leftovers(home: Path) -> list[str]:
    """The files and temporary directories under the data home (the download's lock file and Dagster's home aside)."""
    return sorted(
        str(p.relative_to(home)) for p in home.rglob("*")
        if "dagster_home" not in p.parts and ((p.is_file() and p.name != ".evaluation_data.lock") or p.name.endswith(".tmp"))
    )


def installed_files(archive: EvalArchive) -> list[str]:
    return sorted(f"evaluation_data/{path}" for path in [*archive.files, RECORD_FILE])


def install(archive: EvalArchive, url: str, home: Path, progress: download.Progress | None = None) -> download.Installed:
    return download_evaluation_data(url, load_manifests(archive.manifests_dir), home, progress)


def assert_installed(archive: EvalArchive, home: Path) -> None:
    data_dir = downloaded_data_dir(home)
    for path, data in archive.files.items():
        assert (data_dir / path).read_bytes() == data
    assert sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file()) == sorted([*archive.files, RECORD_FILE])


def dagster_resources(home: Path, **eval_data: str) -> dict:
    return {
        "io_manager": ArtifactIOManager(data_home=str(home)),
        "warehouse": WarehouseResource(data_home=str(home)),
        "eval_data": EvalDataResource(**eval_data),
    }


def test_evaluation_data_then_eval_dataset_through_dagster(data_home, eval_archive_server, monkeypatch):
    for name, value in eval_archive_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(EVAL_DATA_ENV, raising=False)
    assert dg.AssetKey("evaluation_data") in eval_dataset.dependency_keys
    instance = dg.DagsterInstance.ephemeral()
    assets, resources = [evaluation_data, eval_dataset], dagster_resources(data_home)

    result = dg.materialize(assets, selection=["evaluation_data"], resources=resources, instance=instance)
    assert result.success
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(line.startswith("evaluation data: ") and line.endswith("(100 %) downloaded") for line in logged)
    metadata = result.asset_materializations_for_node("evaluation_data")[0].metadata
    archive = eval_archive_server.archive
    assert metadata["source"].value == "downloaded"
    assert metadata["url"].value == eval_archive_server.url
    assert metadata["files"].value == len(archive.files)
    assert metadata["bytes"].value == sum(len(data) for data in archive.files.values())
    assert metadata["archive_sha256"].value == hashlib.sha256(eval_archive_server.body).hexdigest()
    assert metadata["archive_top_folder"].value == archive.top
    assert "declares no license" in metadata["license"].value and "original location" in metadata["license"].value
    table = metadata["datasets"].value
    for manifest in load_manifests(archive.manifests_dir):
        assert manifest.id in table and manifest.source.url in table and manifest.license.replace("|", "\\|") in table
    assert_installed(archive, data_home)
    assert leftovers(data_home) == installed_files(archive)

    culture = archive.cultures[0]
    result = dg.materialize(assets, selection=["eval_dataset"], partition_key=culture, resources=resources, instance=instance)
    assert result.success
    rows = result.output_for_node("eval_dataset")
    expected = {m.id for m in load_manifests(archive.manifests_dir, culture) if m.available_in_reference}
    assert set(rows["dataset"]) == expected and rows.height > 0
    status = Warehouse(data_home / "warehouse.duckdb").query(f"SELECT dataset, status FROM eval_dataset_status WHERE culture = '{culture}'")
    assert set(status.filter(pl.col("status") == "loaded")["dataset"]) == expected

    # materialized again: the files are there and verified, nothing is fetched
    gets = len(eval_archive_server.requests)
    result = dg.materialize(assets, selection=["evaluation_data"], resources=resources, instance=instance)
    assert result.asset_materializations_for_node("evaluation_data")[0].metadata["source"].value.startswith("already downloaded")
    assert len(eval_archive_server.requests) == gets


def _fault(archive: EvalArchive, server: EvalArchiveServer, kind: str) -> tuple[str, list[str]]:
    """Set up one fault; (the URL to download, what the error must name)."""
    first = sorted(archive.files)[0]
    if kind == "server_down":
        return f"http://127.0.0.1:{free_port()}/archive.tar.gz", ["cannot be reached"]
    if kind == "not_found":
        server.status = 404
        return server.url, ["HTTP 404"]
    if kind == "truncated_archive":
        whole = archive.tar_gz()
        server.body = whole[: len(whole) // 2]
        return server.url, ["truncated or not a .tar.gz"]
    if kind == "checksum_mismatch":
        server.body = archive.tar_gz(replace={first: archive.files[first] + b'{"tweet": "x", "label": "OFF"}\n'})
        actual = hashlib.sha256(archive.files[first] + b'{"tweet": "x", "label": "OFF"}\n').hexdigest()
        return server.url, [first, "sha256 mismatch", hashlib.sha256(archive.files[first]).hexdigest(), actual]
    if kind == "missing_file":
        server.body = archive.tar_gz(omit=[first])
        return server.url, [first, "lacks 1 file"]
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["server_down", "not_found", "truncated_archive", "checksum_mismatch", "missing_file"])
def test_a_download_fault_leaves_nothing_half_written_and_a_later_run_succeeds(kind, synthetic_archive, server, data_home):
    url, named = _fault(synthetic_archive, server, kind)
    started = time.monotonic()
    with pytest.raises(EvalDataDownloadError) as failure:
        install(synthetic_archive, url, data_home)
    assert time.monotonic() - started < 10
    message = str(failure.value)
    for part in [url, *named]:
        assert part in message
    if kind in ("server_down", "not_found"):
        assert EVAL_DATA_URL_ENV in message and EVAL_DATA_ENV in message
    assert leftovers(data_home) == []

    server.status, server.body = 200, synthetic_archive.tar_gz()
    assert not install(synthetic_archive, server.url, data_home).reused
    assert_installed(synthetic_archive, data_home)
    assert not (data_home / "downloads").exists()


def test_a_failed_step_names_the_url_and_the_settings_in_dagster(data_home, synthetic_archive, server, monkeypatch):
    monkeypatch.setenv(EVAL_DATA_URL_ENV, server.url)
    monkeypatch.setenv(MANIFESTS_ENV, str(synthetic_archive.manifests_dir))
    monkeypatch.delenv(EVAL_DATA_ENV, raising=False)
    server.status = 404
    result = dg.materialize([evaluation_data], resources=dagster_resources(data_home), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error, message = failure.step_failure_data.error, ""
    while error is not None:  # Dagster wraps the asset's exception: its message is in the cause
        message, error = message + error.message, error.cause
    assert server.url in message and EVAL_DATA_URL_ENV in message and EVAL_DATA_ENV in message
    assert leftovers(data_home) == []


def test_a_cut_off_transfer_resumes_without_fetching_the_first_part_again(synthetic_archive, server, data_home):
    size = len(server.body)
    # every attempt of the first run is cut after a fifth of the archive: it fails and keeps what it received
    server.cut_after, server.cut_times = size // 5, download.ATTEMPTS
    with pytest.raises(EvalDataDownloadError, match="kept and the next run resumes it"):
        install(synthetic_archive, server.url, data_home)
    assert not downloaded_data_dir(data_home).exists()
    received = download.ATTEMPTS * (size // 5)
    assert [p.stat().st_size for p in (data_home / "downloads").glob("*.partial")] == [received]

    reported: list[tuple[int, int | None]] = []
    installed = install(synthetic_archive, server.url, data_home, lambda done, total: reported.append((done, total)))
    assert_installed(synthetic_archive, data_home)
    assert installed.record.resumed_from_byte == received
    assert reported[0][0] > received and reported[-1] == (size, size)
    assert server.body_bytes_sent == size  # not one byte fetched twice
    assert [r for _, r, _ in server.requests] == [None] + [f"bytes={n * (size // 5)}-" for n in range(1, download.ATTEMPTS + 1)]
    assert leftovers(data_home) == installed_files(synthetic_archive)


def test_a_cut_off_transfer_restarts_cleanly_without_range_support_or_when_the_file_changed(synthetic_archive, server, data_home):
    size = len(server.body)
    server.accept_ranges, server.cut_after, server.cut_times = False, size // 2, download.ATTEMPTS
    with pytest.raises(EvalDataDownloadError, match=f"failed {download.ATTEMPTS} times"):
        install(synthetic_archive, server.url, data_home)
    assert leftovers(data_home) == []  # nothing to resume: nothing kept

    # a resumable partial of another version of the archive: If-Range makes the server send the whole new file
    server.accept_ranges, server.cut_after, server.cut_times = True, size // 5, download.ATTEMPTS
    with pytest.raises(EvalDataDownloadError, match="resumes"):
        install(synthetic_archive, server.url, data_home)
    server.body = synthetic_archive.tar_gz(top="CultureLLM-main")  # another top folder name: not assumed
    sent_before = server.body_bytes_sent
    installed = install(synthetic_archive, server.url, data_home)
    _, asked_range, status = server.requests[-1]
    assert asked_range == f"bytes={download.ATTEMPTS * (size // 5)}-" and status == 200  # asked to resume, got the new file whole
    assert installed.record.resumed_from_byte == 0 and installed.record.top_folder == "CultureLLM-main"
    assert server.body_bytes_sent - sent_before == len(server.body)
    assert_installed(synthetic_archive, data_home)


def test_a_file_url_is_read_in_place(synthetic_archive, data_home, tmp_path):
    archive_file = synthetic_archive.write(tmp_path / "culturellm mirror.tar.gz")
    installed = install(synthetic_archive, archive_file.as_uri(), data_home)
    assert installed.record.archive_sha256 == hashlib.sha256(archive_file.read_bytes()).hexdigest()
    assert_installed(synthetic_archive, data_home)
    assert archive_file.exists()  # a local archive is the user's: never moved or deleted
    assert install(synthetic_archive, archive_file.as_uri(), data_home).reused

    # an installed file that no longer matches its manifest: the directory is replaced whole
    damaged = downloaded_data_dir(data_home) / sorted(synthetic_archive.files)[0]
    damaged.write_bytes(b"edited by hand\n")
    assert not install(synthetic_archive, archive_file.as_uri(), data_home).reused
    assert_installed(synthetic_archive, data_home)
    assert leftovers(data_home) == installed_files(synthetic_archive)
    with pytest.raises(EvalDataDownloadError, match="file not found"):
        install(synthetic_archive, (tmp_path / "absent.tar.gz").as_uri(), data_home / "other")


def test_a_directory_the_user_has_short_circuits_the_download(data_home, synthetic_archive, tmp_path, monkeypatch):
    user_dir = tmp_path / "my-eval-data"
    for path, data in synthetic_archive.files.items():
        (user_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (user_dir / path).write_bytes(data)
    monkeypatch.setenv(EVAL_DATA_ENV, str(user_dir))
    monkeypatch.setenv(EVAL_DATA_URL_ENV, f"http://127.0.0.1:{free_port()}/nowhere.tar.gz")  # would fail if asked
    monkeypatch.setenv(MANIFESTS_ENV, str(synthetic_archive.manifests_dir))
    assert preflight(Profile.DEFAULT, {"evaluation_data", "eval_dataset"}) == []

    instance = dg.DagsterInstance.ephemeral()
    resources = dagster_resources(data_home)
    result = dg.materialize([evaluation_data, eval_dataset], selection=["evaluation_data"], resources=resources, instance=instance)
    metadata = result.asset_materializations_for_node("evaluation_data")[0].metadata
    assert "nothing downloaded" in metadata["source"].value and metadata["data_dir"].value == str(user_dir)
    assert metadata["datasets_verified"].value == len(load_manifests(synthetic_archive.manifests_dir))
    result = dg.materialize([evaluation_data, eval_dataset], selection=["eval_dataset"], partition_key="english", resources=resources, instance=instance)
    assert result.output_for_node("eval_dataset").height == sum(len(d.splitlines()) for d in synthetic_archive.files.values())
    assert leftovers(data_home) and not downloaded_data_dir(data_home).exists() and not (data_home / "downloads").exists()


def test_preflight_catches_an_unreachable_archive_in_seconds(data_home, synthetic_archive, server, monkeypatch, tmp_path):
    monkeypatch.delenv(EVAL_DATA_ENV, raising=False)
    monkeypatch.setenv(MANIFESTS_ENV, str(synthetic_archive.manifests_dir))
    whole_graph = {"evaluation_data", "eval_dataset"}
    down = f"http://127.0.0.1:{free_port()}/archive.tar.gz"
    monkeypatch.setenv(EVAL_DATA_URL_ENV, down)
    started = time.monotonic()
    (problem,) = preflight(Profile.DEFAULT, whole_graph)
    assert time.monotonic() - started < 10
    assert "cannot be reached" in problem and down in problem and EVAL_DATA_URL_ENV in problem and EVAL_DATA_ENV in problem

    monkeypatch.setenv(EVAL_DATA_URL_ENV, server.url)
    assert preflight(Profile.DEFAULT, whole_graph) == []
    # eval_dataset alone (a one-culture backfill) needs the data already there
    (problem,) = preflight(Profile.DEFAULT, {"eval_dataset"})
    assert "not downloaded yet" in problem and "evaluation_data" in problem and EVAL_DATA_ENV in problem
    server.status = 404
    (problem,) = preflight(Profile.DEFAULT, whole_graph)
    assert "HTTP 404" in problem and server.url in problem and EVAL_DATA_ENV in problem

    # once downloaded, the archive is not needed again
    server.status = 200
    install(synthetic_archive, server.url, data_home)
    monkeypatch.setenv(EVAL_DATA_URL_ENV, down)
    assert preflight(Profile.DEFAULT, whole_graph) == preflight(Profile.DEFAULT, {"eval_dataset"}) == []
    # a directory the user names must exist
    monkeypatch.setenv(EVAL_DATA_ENV, str(tmp_path / "absent"))
    (problem,) = preflight(Profile.DEFAULT, whole_graph)
    assert str(tmp_path / "absent") in problem and "not found" in problem
