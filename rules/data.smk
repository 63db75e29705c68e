rule synthetic_data:
    output:
        data=directory(wf.SYNTHETIC_DIR),
        truth=wf.SYNTHETIC_TRUTH,
    params:
        synthetic=config["synthetic"],
    log:
        "logs/data/synthetic.log",
    threads: 2
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/synthetic_data.py"


rule ingest:
    input:
        get_ingest_input,
    output:
        train="results/data/train.csv",
        summary="results/data/ingest.json",
    params:
        data_dir=DATA,
    log:
        "logs/data/ingest.log",
    threads: 2
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/ingest.py"


rule split:
    input:
        train="results/data/train.csv",
    output:
        split="results/data/split.csv",
    params:
        val_fraction=config["split"]["val_fraction"],
        seed=config["split"]["seed"],
    log:
        "logs/data/split.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/split.py"
