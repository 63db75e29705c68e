rule encode_shard:
    input:
        unpack(lambda wc: get_threshold_input()),
        preds=lambda wc: get_test_pred(config["submission"]["source"], wc.shard),
        ingest="results/data/ingest.json",
    output:
        csv="results/submission/shards/{shard}.csv",
    params:
        ids=lambda wc: SHARDS[wc.shard],
        threshold=config["submission"]["threshold"],
    log:
        "logs/submission/encode_{shard}.log",
    group:
        get_group("encode_shard")
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/encode_shard.py"


rule gather_submission:
    input:
        unpack(get_data),
        shards=expand("results/submission/shards/{shard}.csv", shard=SHARDS),
    output:
        submission="results/submission.csv.gz",
    params:
        sample=get_sample_submission(),
    log:
        "logs/submission/gather.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/gather_submission.py"


rule check_submission:
    input:
        unpack(lambda wc: {**get_data(), **get_truth()}),
        submission="results/submission.csv.gz",
        ingest="results/data/ingest.json",
    output:
        check="results/submission_check.json",
    params:
        sample=get_sample_submission(),
        max_empty_fraction=config["submission"]["max_empty_fraction"],
    log:
        "logs/submission/check.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/check_submission.py"


# Only with kept test truth (config `truth:`, or the synthetic set's): in `all` then.
rule score_test:
    input:
        unpack(lambda wc: get_threshold_input()),
        unpack(get_score_test_input),
        ingest="results/data/ingest.json",
    output:
        per_image=report(
            wf.TEST_PER_IMAGE,
            caption="../report/test_scores.rst",
            category="Test photos",
            subcategory="Tables",
        ),
        per_car=report(
            wf.TEST_PER_CAR,
            caption="../report/test_scores.rst",
            category="Test photos",
            subcategory="Tables",
        ),
    params:
        sources=TEST_SCORED,
        shards=SHARDS,
        threshold=config["submission"]["threshold"],
    log:
        "logs/submission/score_test.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/score_test.py"
