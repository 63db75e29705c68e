# The trained chain as data, and as a bundle that runs anywhere (see carvana.chain, carvana.bundle):
#   results/chain.json              the cut-outs' source, its models, boxes, flips, threshold
#   snakemake --cores all export    results/export/<source>/: manifest.json, a graph and the
#                                   weights of every model of the chain


rule chain:
    input:
        unpack(get_chain_inputs),
        ingest="results/data/ingest.json",
    output:
        chain="results/chain.json",
    params:
        settings=wf.chain_settings(config, CUTOUTS.source, CUTOUTS.threshold),
        tiles=config["tiles"],
    log:
        "logs/chain.log",
    resources:
        mem_mb=res("light", "mem_mb"),
        runtime=res("light", "runtime"),
    conda:
        ENV
    script:
        "../scripts/chain.py"


rule export_bundle:
    input:
        chain="results/chain.json",
        weights=list(CUTOUTS.weights().values()),
    output:
        bundle=directory(f"results/export/{CUTOUTS.source}"),
    log:
        "logs/export.log",
    benchmark:
        "results/benchmarks/export.tsv"
    threads: 2
    resources:
        mem_mb=res_export("mem_mb"),
        runtime=res_export("runtime"),
    conda:
        ENV
    script:
        "../scripts/export_bundle.py"
