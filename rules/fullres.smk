rule boxes_train:
    input:
        preds=f"results/predict/{BBOX_MODEL}/train_all",
        split="results/data/split.csv",
        ingest="results/data/ingest.json",
    output:
        boxes="results/bbox/train.csv",
    params:
        fold="all",
        tiles=config["tiles"],
        threshold=config["bbox"]["threshold"],
        margin=config["bbox"]["margin"],
        max_fallback_fraction=config["bbox"]["max_fallback_fraction"],
    log:
        "logs/bbox/train.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/boxes.py"


rule boxes_test:
    input:
        preds=get_test_pred(BBOX_MODEL, "{shard}"),
        ingest="results/data/ingest.json",
    output:
        boxes="results/bbox/test/{shard}.csv",
    params:
        ids=lambda wc: SHARDS[wc.shard],
        tiles=config["tiles"],
        threshold=config["bbox"]["threshold"],
        margin=config["bbox"]["margin"],
        max_fallback_fraction=config["bbox"]["max_fallback_fraction"],
    log:
        "logs/bbox/test_{shard}.log",
    group:
        get_group("boxes_test")
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/boxes.py"


rule bbox_cuts:
    input:
        unpack(get_data),
        boxes="results/bbox/train.csv",
        split="results/data/split.csv",
    output:
        cuts="results/bbox/val_cuts.csv",
    params:
        data_dir=DATA,
    log:
        "logs/bbox/val_cuts.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/bbox_cuts.py"


rule train_tiles:
    input:
        unpack(get_data),
        unpack(get_tile_model_inputs),
        split="results/data/split.csv",
        ingest="results/data/ingest.json",
        boxes="results/bbox/train.csv",
    output:
        weights="results/models/{model}/weights.pt",
        history="results/models/{model}/history.csv",
        curve="results/models/{model}/learning_curve.png",
        summary="results/models/{model}/train.json",
    wildcard_constraints:
        model=one_of(TILE_MODELS),
    params:
        name=lambda wc: wc.model,
        spec=lambda wc: wf.model_spec(config, wc.model),
        data_dir=DATA,
        tiles=config["tiles"],
        seed=get_seed,
        device=config["device"],
        cpu_fallback=config["cpu_fallback"],
        resume=lambda wc: get_resume(wc.model),
    log:
        "logs/train/{model}.log",
    benchmark:
        "results/benchmarks/train/{model}.tsv"
    threads: 2
    resources:
        gpu=config["gpu"],
        mem_mb=res_train("mem_mb"),
        runtime=res_train("runtime"),
    conda:
        ENV
    script:
        "../scripts/train_tiles.py"


rule predict_tiles_val:
    input:
        unpack(get_data),
        unpack(get_depth_input("train")),
        weights="results/models/{model}/weights.pt",
        split="results/data/split.csv",
        ingest="results/data/ingest.json",
        boxes="results/bbox/train.csv",
    output:
        preds=directory("results/predict/{model}/val"),
        timing="results/predict/{model}/val_timing.json",
    wildcard_constraints:
        model=one_of(TILE_MODELS),
    params:
        name=lambda wc: wc.model,
        spec=lambda wc: wf.model_spec(config, wc.model),
        data_dir=DATA,
        folder="train",
        fold="val",
        tiles=config["tiles"],
        batch_size=config["predict"]["tile_batch_size"],
        tta_hflip=config["predict"]["tta_hflip"],
        backend=config["predict"]["backend"],
        precision=config["predict"]["precision"],
        device=config["device"],
        cpu_fallback=config["cpu_fallback"],
    log:
        "logs/predict/{model}/val.log",
    benchmark:
        "results/benchmarks/predict/{model}_val.tsv"
    threads: 2
    resources:
        gpu=config["gpu"],
        mem_mb=res_predict("mem_mb", "val"),
        runtime=res_predict("runtime", "val"),
    conda:
        ENV
    script:
        "../scripts/predict_tiles.py"


rule predict_tiles_test:
    input:
        unpack(get_depth_input("test")),
        unpack(get_test_shard_images),
        weights="results/models/{model}/weights.pt",
        ingest="results/data/ingest.json",
        boxes="results/bbox/test/{shard}.csv",
    output:
        preds=directory("results/predict/{model}/test/{shard}"),
        timing="results/predict/{model}/test_timing/{shard}.json",
    wildcard_constraints:
        model=one_of(TILE_MODELS),
    params:
        name=lambda wc: wc.model,
        spec=lambda wc: wf.model_spec(config, wc.model),
        data_dir=DATA,
        folder="test",
        ids=lambda wc: SHARDS[wc.shard],
        tiles=config["tiles"],
        batch_size=config["predict"]["tile_batch_size"],
        tta_hflip=config["predict"]["tta_hflip"],
        backend=config["predict"]["backend"],
        precision=config["predict"]["precision"],
        device=config["device"],
        cpu_fallback=config["cpu_fallback"],
    log:
        "logs/predict/{model}/test_{shard}.log",
    benchmark:
        "results/benchmarks/predict/{model}_test_{shard}.tsv"
    threads: 2
    group:
        get_group("predict_tiles_test")
    resources:
        gpu=config["gpu"],
        mem_mb=res_predict("mem_mb", "shard"),
        runtime=res_predict("runtime", "shard"),
    conda:
        ENV
    script:
        "../scripts/predict_tiles.py"


rule ensemble_val:
    input:
        unpack(get_data),
        unpack(get_ensemble_weights),
        member_preds=[get_val_pred(m) for m in ENSEMBLE],
        split="results/data/split.csv",
        ingest="results/data/ingest.json",
    output:
        preds=directory("results/predict/ensemble/val"),
    params:
        members=ENSEMBLE,
        fold="val",
    log:
        "logs/ensemble/val.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/ensemble.py"


rule ensemble_test:
    input:
        unpack(get_ensemble_weights),
        member_preds=lambda wc: [get_test_pred(m, wc.shard) for m in ENSEMBLE],
        ingest="results/data/ingest.json",
    output:
        preds=directory("results/predict/ensemble/test/{shard}"),
    params:
        members=ENSEMBLE,
        ids=lambda wc: SHARDS[wc.shard],
    log:
        "logs/ensemble/test_{shard}.log",
    group:
        get_group("ensemble_test")
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/ensemble.py"


# `ensemble: weights: validation`: every weighting on a grid, scored on the validation images.
rule ensemble_weights:
    input:
        unpack(get_data),
        member_preds=[get_val_pred(m) for m in ENSEMBLE],
        split="results/data/split.csv",
        ingest="results/data/ingest.json",
    output:
        choice=wf.ENSEMBLE_WEIGHTS,
        table=report(
            "results/metrics/ensemble_weights.csv",
            caption="../report/ensemble_weights.rst",
            category="Models",
        ),
    params:
        members=list(ENSEMBLE),
        data_dir=DATA,
        threshold=get_weight_threshold(),
        step=config.get("ensemble", {}).get("weight_step", 0.1),
    log:
        "logs/ensemble/weights.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/ensemble_weights.py"


# `pseudo_labels: rounds: N`: round r's labels of a test shard, from round r-1's ensemble
# (its weights chosen on validation, as the final ensemble's, with `weights: validation`).
rule pseudo_labels:
    input:
        unpack(get_data),
        member_preds=lambda wc: [get_test_pred(m, wc.shard) for m in get_pseudo_sources(wc)],
        member_val=lambda wc: [get_val_pred(m) for m in get_pseudo_sources(wc)],
        split="results/data/split.csv",
        ingest="results/data/ingest.json",
    output:
        labels=directory("results/pseudo/r{round}/{shard}"),
        summary="results/pseudo/r{round}/{shard}.json",
    wildcard_constraints:
        round=r"[1-9]\d*",
    params:
        members=get_pseudo_sources,
        ids=lambda wc: SHARDS[wc.shard],
        low=lambda wc: config["pseudo_labels"]["low"],
        high=lambda wc: config["pseudo_labels"]["high"],
        data_dir=DATA,
        threshold=get_weight_threshold(),
        step=config.get("ensemble", {}).get("weight_step", 0.1),
    log:
        "logs/pseudo/r{round}_{shard}.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/pseudo_labels.py"
