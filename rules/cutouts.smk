# Cut-outs of a person's own photos with the trained workflow (see carvana.cutouts):
#   snakemake --cores all cutouts --config photos_dir=DIR
# Photos are sharded (`cutouts: shard_size`); each shard runs results/chain.json in process
# through carvana.segmenter.Segmenter. Any file name works: job ids are shard numbers.
# The plan (CUTOUTS) and the input functions are in common.smk.


rule cutouts_shard:
    input:
        unpack(get_cutout_shard_inputs),
        chain="results/chain.json",
    output:
        cutouts=directory(f"{cut.SHARD_DIR}/{{shard}}"),
    params:
        photos=lambda wc: CUTOUTS.shard_photos(wc.shard),
        max_empty_fraction=CUTOUT_SETTINGS.get("max_empty_fraction", 0.5),
        device=config["device"],
    log:
        "logs/cutouts/shard_{shard}.log",
    benchmark:
        "results/benchmarks/cutouts/shard_{shard}.tsv"
    threads: 2
    resources:
        gpu=config["gpu"],
        mem_mb=res_cutouts("mem_mb"),
        runtime=res_cutouts("runtime"),
    conda:
        ENV
    script:
        "../scripts/cutouts_shard.py"


rule cutouts_collect:
    input:
        shards=get_cutout_shard_dirs,
    output:
        sheet=f"{cut.OUT_DIR}/contact_sheet.jpg",
        summary=f"{cut.OUT_DIR}/summary.csv",
        _files=get_cutout_photo_files(),
    params:
        stems=list(CUTOUTS.photos),
        out_dir=lambda wildcards, output: os.path.dirname(output.sheet),
    log:
        "logs/cutouts/collect.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/cutouts_collect.py"
