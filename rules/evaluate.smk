rule evaluate:
    input:
        unpack(get_data),
        preds=lambda wc: get_val_pred(wc.model),
        split="results/data/split.csv",
        ingest="results/data/ingest.json",
        train_summary=get_train_summary,
    output:
        metrics="results/metrics/{model}.json",
        per_image="results/metrics/{model}_per_image.csv",
        thresholds="results/metrics/{model}_thresholds.csv",
    wildcard_constraints:
        model=one_of(SCORED),
    params:
        name=lambda wc: wc.model,
        data_dir=DATA,
    log:
        "logs/evaluate/{model}.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


rule thresholds:
    input:
        curves=expand("results/metrics/{model}_thresholds.csv", model=SCORED),
    output:
        choice="results/metrics/threshold.json",
    params:
        models=SCORED,
        setting=config["submission"]["threshold"],
        source=config["submission"]["source"],
    log:
        "logs/evaluate/thresholds.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/thresholds.py"


rule summary:
    input:
        metrics=expand("results/metrics/{model}.json", model=SCORED),
        train=expand("results/models/{model}/train.json", model=TRAINED),
        timing=[get_val_timing(m) for m in TRAINED],
    output:
        summary=report(
            "results/metrics/summary.csv",
            caption="../report/summary.rst",
            category="Models",
        ),
    params:
        scored=SCORED,
        trained=TRAINED,
    log:
        "logs/evaluate/summary.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/summary.py"
