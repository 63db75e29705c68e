# Analysis figures and tables (results/analysis/), gathered by `snakemake --report`.
# Config: analysis: {worst_k: 6, worst_models: [...]}; helpers in common.smk.


rule analysis_model_comparison:
    input:
        metrics=expand("results/metrics/{model}.json", model=SCORED),
        train=expand("results/models/{model}/train.json", model=TRAINED),
    output:
        png=report(
            "results/analysis/model_comparison.png",
            caption="../report/model_comparison.rst",
            category="Models",
            subcategory="Figures",
        ),
        csv=report(
            "results/analysis/model_comparison.csv",
            caption="../report/model_comparison.rst",
            category="Models",
            subcategory="Tables",
        ),
    log:
        "logs/analysis/model_comparison.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/analysis_model_comparison.py"


rule analysis_ladder:
    input:
        metrics=expand("results/metrics/{model}.json", model=LADDER),
        train=expand("results/models/{model}/train.json", model=LADDER),
    output:
        png=report(
            "results/analysis/ladder.png",
            caption="../report/ladder.rst",
            category="Models",
            subcategory="Figures",
        ),
        csv=report(
            "results/analysis/ladder.csv",
            caption="../report/ladder.rst",
            category="Models",
            subcategory="Tables",
        ),
    log:
        "logs/analysis/ladder.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/analysis_ladder.py"


rule analysis_threshold_curves:
    input:
        curves=expand("results/metrics/{model}_thresholds.csv", model=SCORED),
    output:
        png=report(
            "results/analysis/threshold_curves.png",
            caption="../report/threshold_curves.rst",
            category="Models",
            subcategory="Figures",
        ),
        csv=report(
            "results/analysis/threshold_curves.csv",
            caption="../report/threshold_curves.rst",
            category="Models",
            subcategory="Tables",
        ),
    params:
        models=SCORED,
    log:
        "logs/analysis/threshold_curves.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/analysis_threshold_curves.py"


rule analysis_learning_curves:
    input:
        histories=expand("results/models/{model}/history.csv", model=TRAINED),
    output:
        png=report(
            "results/analysis/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Models",
            subcategory="Figures",
        ),
        csv=report(
            "results/analysis/learning_curves.csv",
            caption="../report/learning_curves.rst",
            category="Models",
            subcategory="Tables",
        ),
    params:
        models=TRAINED,
    log:
        "logs/analysis/learning_curves.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/analysis_learning_curves.py"


rule analysis_worst_predictions:
    input:
        unpack(get_data),
        per_image="results/metrics/{model}_per_image.csv",
        preds=lambda wc: get_val_pred(wc.model),
    output:
        png=report(
            "results/analysis/worst/{model}.png",
            caption="../report/worst_predictions.rst",
            category="Worst predictions",
            subcategory="{model}",
        ),
        csv=report(
            "results/analysis/worst/{model}.csv",
            caption="../report/worst_predictions.rst",
            category="Worst predictions",
            subcategory="{model}",
        ),
    wildcard_constraints:
        model=one_of(get_worst_models()),
    params:
        name=lambda wc: wc.model,
        data_dir=DATA,
        k=WORST_K,
    log:
        "logs/analysis/worst_predictions_{model}.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/analysis_worst_predictions.py"


# Only with kept test truth: the submission source's worst test photos.
rule analysis_worst_test:
    input:
        unpack(get_data),
        unpack(lambda wc: get_threshold_input()),
        unpack(get_truth),
        per_image=wf.TEST_PER_IMAGE,
        preds=[get_test_pred(config["submission"]["source"], shard) for shard in SHARDS],
        ingest="results/data/ingest.json",
    output:
        png=report(
            f"{wf.WORST_TEST}.png",
            caption="../report/worst_test.rst",
            category="Test photos",
            subcategory="Figures",
        ),
        csv=report(
            f"{wf.WORST_TEST}.csv",
            caption="../report/worst_test.rst",
            category="Test photos",
            subcategory="Tables",
        ),
    params:
        name=config["submission"]["source"],
        data_dir=DATA,
        k=WORST_K,
        threshold=config["submission"]["threshold"],
    log:
        "logs/analysis/worst_test.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/analysis_worst_test.py"


rule analysis_bbox:
    input:
        cuts="results/bbox/val_cuts.csv",
    output:
        png=report(
            "results/analysis/bbox.png",
            caption="../report/bbox.rst",
            category="Bounding boxes",
            subcategory="Figures",
        ),
        csv=report(
            "results/analysis/bbox.csv",
            caption="../report/bbox.rst",
            category="Bounding boxes",
            subcategory="Tables",
        ),
    log:
        "logs/analysis/bbox.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/analysis_bbox.py"


rule report_figures:
    input:
        get_analysis_outputs,
