rule train_lowres:
    input:
        unpack(get_data),
        unpack(get_lowres_inputs),
        split="results/data/split.csv",
    output:
        weights="results/models/{model}/weights.pt",
        history="results/models/{model}/history.csv",
        curve="results/models/{model}/learning_curve.png",
        summary="results/models/{model}/train.json",
    wildcard_constraints:
        model=one_of(LADDER),
    params:
        name=lambda wc: wc.model,
        spec=lambda wc: wf.model_spec(config, wc.model),
        data_dir=DATA,
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
        "../scripts/train_lowres.py"


rule predict_lowres_train_all:
    input:
        unpack(get_data),
        weights="results/models/{model}/weights.pt",
        split="results/data/split.csv",
    output:
        preds=directory("results/predict/{model}/train_all"),
        timing="results/predict/{model}/train_all_timing.json",
    wildcard_constraints:
        model=one_of(LADDER),
    params:
        name=lambda wc: wc.model,
        spec=lambda wc: wf.model_spec(config, wc.model),
        data_dir=DATA,
        folder="train",
        fold="all",
        batch_size=config["predict"]["batch_size"],
        tta_hflip=config["predict"]["tta_hflip"],
        backend=config["predict"]["backend"],
        precision=config["predict"]["precision"],
        device=config["device"],
        cpu_fallback=config["cpu_fallback"],
    log:
        "logs/predict/{model}/train_all.log",
    benchmark:
        "results/benchmarks/predict/{model}_train_all.tsv"
    threads: 2
    resources:
        gpu=config["gpu"],
        mem_mb=res_predict("mem_mb", "train"),
        runtime=res_predict("runtime", "train"),
    conda:
        ENV
    script:
        "../scripts/predict_lowres.py"


rule predict_lowres_test:
    input:
        unpack(get_test_shard_images),
        weights="results/models/{model}/weights.pt",
        _ingest="results/data/ingest.json",
    output:
        preds=directory("results/predict/{model}/test/{shard}"),
        timing="results/predict/{model}/test_timing/{shard}.json",
    wildcard_constraints:
        model=one_of(LADDER),
    params:
        name=lambda wc: wc.model,
        spec=lambda wc: wf.model_spec(config, wc.model),
        data_dir=DATA,
        folder="test",
        ids=lambda wc: SHARDS[wc.shard],
        batch_size=config["predict"]["batch_size"],
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
        get_group("predict_lowres_test")
    resources:
        gpu=config["gpu"],
        mem_mb=res_predict("mem_mb", "shard"),
        runtime=res_predict("runtime", "shard"),
    conda:
        ENV
    script:
        "../scripts/predict_lowres.py"


# Out-of-fold maps for a depth model's training (`depth_folds: k`, carvana.oof): fold copies
# of a ladder model, each trained on the other folds' cars, map the held-out fold's photos.
rule oof_split:
    input:
        split="results/data/split.csv",
    output:
        folds="results/data/oof/k{k}/{fold}.csv",
    wildcard_constraints:
        k=r"\d+",
        fold=r"\d+",
    params:
        k=lambda wc: int(wc.k),
        fold=lambda wc: int(wc.fold),
    log:
        "logs/data/oof_k{k}_{fold}.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/oof_split.py"


use rule train_lowres as train_lowres_fold with:
    input:
        unpack(get_data),
        split="results/data/oof/k{k}/{fold}.csv",
    output:
        weights="results/models/{model}/oof_k{k}/{fold}/weights.pt",
        history="results/models/{model}/oof_k{k}/{fold}/history.csv",
        curve="results/models/{model}/oof_k{k}/{fold}/learning_curve.png",
        summary="results/models/{model}/oof_k{k}/{fold}/train.json",
    wildcard_constraints:
        model=one_of(LADDER),
        k=r"\d+",
        fold=r"\d+",
    params:  # the others are train_lowres's
        name=lambda wc: get_fold_name(wc),
        spec=lambda wc: wf.fold_spec(config, wc.model),
        resume=lambda wc: get_resume(get_fold_name(wc)),
    log:
        "logs/train/{model}_oof_k{k}_{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}_oof_k{k}_{fold}.tsv"


use rule predict_lowres_train_all as predict_lowres_fold with:
    input:
        unpack(get_data),
        weights="results/models/{model}/oof_k{k}/{fold}/weights.pt",
        split="results/data/oof/k{k}/{fold}.csv",
    output:
        preds=directory("results/predict/{model}/oof_k{k}/{fold}"),
        timing="results/predict/{model}/oof_k{k}/{fold}_timing.json",
    wildcard_constraints:
        model=one_of(LADDER),
        k=r"\d+",
        fold=r"\d+",
    params:  # the others are predict_lowres_train_all's: the held-out cars are `val`
        name=lambda wc: get_fold_name(wc),
        spec=lambda wc: wf.fold_spec(config, wc.model),
        fold="val",
    log:
        "logs/predict/{model}/oof_k{k}_{fold}.log",
    benchmark:
        "results/benchmarks/predict/{model}_oof_k{k}_{fold}.tsv"


rule gather_oof:
    input:
        split="results/data/split.csv",
        fold_preds=lambda wc: expand(
            "results/predict/{model}/oof_k{k}/{fold}", model=wc.model, k=wc.k, fold=range(int(wc.k))
        ),
    output:
        preds=directory("results/predict/{model}/train_oof_k{k}"),
    wildcard_constraints:
        model=one_of(LADDER),
        k=r"\d+",
    log:
        "logs/predict/{model}/train_oof_k{k}.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/gather_oof.py"
