# carvana-pipeline: the Kaggle Carvana Image Masking Challenge, raw data to scored submission.
# Usage: snakemake --cores all submission     (see README.md)

from snakemake.utils import min_version, validate

min_version("9.0")


# config.yaml is the default preset. A preset given with --configfile is a complete config of
# its own: config.yaml is then not read, so no preset inherits a key by accident.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/lowres.smk"
include: "rules/fullres.smk"
include: "rules/evaluate.smk"
include: "rules/submission.smk"
include: "rules/analysis.smk"
include: "rules/cutouts.smk"
include: "rules/export.smk"


# Before any job runs: the plan's projected wall time on the cores given (carvana.resources).
onstart:
    logger.info(plan_projection())


rule all:
    input:
        get_final_outputs(),
    default_target: True


rule submission:
    input:
        submission="results/submission.csv.gz",
        check="results/submission_check.json",
        chain="results/chain.json",


# The chain as a bundle that runs with no config and no results/: carvana-cutout --models DIR
rule export:
    input:
        f"results/export/{CUTOUTS.source}",


# Cut out a person's own photos with the trained models: --config photos_dir=DIR
rule cutouts:
    input:
        get_cutout_outputs,
