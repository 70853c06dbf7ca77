"""The library never imports Dagster: every package under culture_assets/ outside the Dagster layer imports
in a Python where `import dagster` fails (docs/architecture.md)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import culture_assets

# The Dagster layer: thin assets, resources, partitions, automation, the Definitions and the CLI around them.
DAGSTER_LAYER = {
    "assets", "resources", "partitions", "automation", "definitions", "cli", "pipeline", "profiles",
    "io_manager", "deploy", "launcher", "recovery",
}

BLOCK_DAGSTER = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    class BlockDagster:
        def find_spec(self, name, path=None, target=None):
            if name == "dagster" or name.startswith(("dagster.", "dagster_")):
                raise ImportError(f"the library imported {name}")

    sys.meta_path.insert(0, BlockDagster())
    for name in sys.argv[1:]:
        module = importlib.import_module(name)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
            importlib.import_module(info.name)
    """
)


def library_modules() -> list[str]:
    return sorted(
        f"culture_assets.{info.name}" for info in pkgutil.iter_modules(culture_assets.__path__) if info.name not in DAGSTER_LAYER
    )


def test_library_packages_import_without_dagster() -> None:
    modules = library_modules()
    assert {"culture_assets.augment", "culture_assets.llm", "culture_assets.training", "culture_assets.evaluation"} <= set(modules)
    done = subprocess.run([sys.executable, "-c", BLOCK_DAGSTER, *modules], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_blocker_does_block_dagster() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_DAGSTER, "culture_assets.partitions"], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "the library imported dagster" in done.stderr
