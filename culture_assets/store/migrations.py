"""Versioned schema of the warehouse. Append a migration; never edit an applied one.

Version ranges keep independent stages from colliding: 1-99 foundation, 100-199 augmentation,
200-299 training, 300-399 evaluation, 400-499 operations.
"""

from __future__ import annotations

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE survey_distribution (
        culture VARCHAR NOT NULL,
        question_id VARCHAR NOT NULL,
        code BIGINT NOT NULL,
        share DOUBLE NOT NULL,
        modal_answer BIGINT,
        n_valid BIGINT NOT NULL,
        never_asked BOOLEAN NOT NULL,
        pooling VARCHAR NOT NULL,
        survey_version VARCHAR NOT NULL,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (culture, question_id, code)
    );
    CREATE TABLE sample_lineage (
        sample_id VARCHAR PRIMARY KEY,
        parent_id VARCHAR,
        question_id VARCHAR NOT NULL,
        step VARCHAR NOT NULL,
        text VARCHAR NOT NULL,
        model VARCHAR,
        prompt_hash VARCHAR,
        similarity DOUBLE,
        accepted BOOLEAN NOT NULL,
        reason VARCHAR,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE llm_cache (
        cache_key VARCHAR PRIMARY KEY,
        model VARCHAR NOT NULL,
        request_json VARCHAR NOT NULL,
        response_json VARCHAR NOT NULL,
        prompt_tokens BIGINT,
        completion_tokens BIGINT,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE metrics (
        run_id VARCHAR,
        culture VARCHAR,
        dataset VARCHAR,
        model VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        ci_low DOUBLE,
        ci_high DOUBLE,
        n BIGINT,
        invalid_rate DOUBLE,
        config_hash VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE model_registry (
        model_key VARCHAR PRIMARY KEY,
        culture VARCHAR,
        variant VARCHAR,
        trainer VARCHAR NOT NULL,
        base_model VARCHAR NOT NULL,
        artifact VARCHAR NOT NULL,
        artifact_hash VARCHAR,
        training_set_version VARCHAR,
        hyperparameters_json VARCHAR,
        sample_ids_json VARCHAR,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    """,
    # --- training (200-299) ---
    200: """
    CREATE TABLE openai_files (
        file_hash VARCHAR PRIMARY KEY,
        file_id VARCHAR NOT NULL,
        filename VARCHAR NOT NULL,
        purpose VARCHAR NOT NULL,
        bytes BIGINT NOT NULL,
        base_url VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE openai_fine_tuning_jobs (
        job_id VARCHAR PRIMARY KEY,
        fingerprint VARCHAR NOT NULL,
        model_key VARCHAR NOT NULL,
        asset_key VARCHAR,
        partition_key VARCHAR,
        base_model VARCHAR NOT NULL,
        training_file_id VARCHAR NOT NULL,
        validation_file_id VARCHAR,
        status VARCHAR NOT NULL,
        fine_tuned_model VARCHAR,
        error_message VARCHAR,
        estimated_tokens BIGINT,
        estimated_cost_usd DOUBLE,
        hyperparameters_json VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp,
        updated_at TIMESTAMP DEFAULT current_timestamp
    );
    """,
    # --- evaluation (300-399) ---
    300: """
    CREATE TABLE eval_cache (
        cache_key VARCHAR PRIMARY KEY,
        model VARCHAR NOT NULL,
        scorer VARCHAR NOT NULL,
        dataset VARCHAR,
        row_id VARCHAR,
        prediction VARCHAR NOT NULL,
        scores_json VARCHAR NOT NULL,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE eval_dataset_status (
        culture VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        detail VARCHAR,
        n_file_rows BIGINT,
        n_empty_label BIGINT,
        n_unknown_label BIGINT,
        n_empty_text BIGINT,
        n_sampled BIGINT,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (culture, dataset)
    );
    ALTER TABLE metrics ADD COLUMN variant VARCHAR;
    ALTER TABLE metrics ADD COLUMN n_train BIGINT;
    ALTER TABLE metrics ADD COLUMN tiny_model BOOLEAN;
    """,
    301: """
    ALTER TABLE metrics ADD COLUMN eval_config VARCHAR;
    CREATE TABLE comparisons (
        culture VARCHAR NOT NULL,
        scope VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        baseline VARCHAR NOT NULL,
        diff DOUBLE,
        ci_low DOUBLE,
        ci_high DOUBLE,
        p_value DOUBLE,
        p_holm DOUBLE,
        n_clusters BIGINT,
        config_hash VARCHAR NOT NULL,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE comparison_replicates (
        culture VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        baseline VARCHAR NOT NULL,
        config_hash VARCHAR NOT NULL,
        diffs DOUBLE[] NOT NULL,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE label_counts (
        culture VARCHAR NOT NULL,
        dataset VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        label VARCHAR NOT NULL,
        n BIGINT NOT NULL,
        share DOUBLE NOT NULL,
        eval_config VARCHAR NOT NULL,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp
    );
    """,
    302: """
    CREATE TABLE alignment_matrix (
        model_culture VARCHAR NOT NULL,
        survey_culture VARCHAR NOT NULL,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        ci_low DOUBLE,
        ci_high DOUBLE,
        n BIGINT,
        run_id VARCHAR,
        written_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (model_culture, survey_culture, metric)
    );
    """,
}
