import os
import re
from glob import glob

from carvana import cutouts as cut
from carvana import oof
from carvana import projection as pj
from carvana import resources as rs
from carvana import workflow as wf
from snakemake.logging import logger

config.update(wf.with_pseudo_rounds(config))  # pseudo-label rounds become models
wf.check_config(config)

FIRST_TRY_NOTE = wf.first_try_note(
    config, list(workflow.overwrite_configfiles or []), os.path.join(workflow.basedir, "config.yaml")
)
if FIRST_TRY_NOTE:
    logger.warning(FIRST_TRY_NOTE)

DATA = wf.data_dir(config)
SYNTHETIC = wf.is_synthetic(config)
SHARDS = wf.test_shards(config)
N_TEST = sum(len(ids) for ids in SHARDS.values())
LADDER = list(config["ladder"])
TILE_MODELS = wf.tile_models(config)
TRAINED = LADDER + TILE_MODELS
ENSEMBLE = wf.ensemble_members(config)
SCORED = wf.scored_models(config)
TEST_SCORED = wf.scored_test_sources(config)  # scored on the test photos, when truth is kept
BBOX_MODEL = config.get("bbox", {}).get("model", "")
WORST_K = int(config.get("analysis", {}).get("worst_k", 6))
ENV = "../envs/carvana.yaml"
SHAPE = rs.data_shape(config)  # image size and train count, for the model jobs' requests


wildcard_constraints:
    shard=r"\d{4}",


def plan_projection():
    """The projection line of the jobs this run will execute (for the Snakefile's onstart),
    scaled by what this DAG's finished heavy jobs took here (their benchmark files)."""
    def runtime(job):
        return float(job.resources.get("runtime", 0) or 0)

    needrun = set(workflow.dag.needrun_jobs())
    jobs = [pj.PlannedJob(runtime_min=runtime(job), threads=int(job.threads),
                          heavy=job.rule.benchmark is not None, rule=job.rule.name)
            for job in needrun]
    done = [pj.FinishedJob(rule=job.rule.name, runtime_min=runtime(job), wall_s=wall)
            for job in workflow.dag.jobs if job not in needrun and job.benchmark
            and (wall := pj.benchmark_seconds(job.benchmark)) is not None]
    return pj.projection_note(jobs, workflow.resource_settings.cores or 1, done)


def one_of(names):
    """A wildcard pattern matching exactly these names (nothing at all for no names)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def res(kind, key):
    """A light job's resource request: config `resources: light:` (a number)."""
    return config["resources"][kind][key]


def res_train(key):
    """A training job's `mem_mb`/`runtime`: config `resources: train:`, or (`auto`) the formula
    of carvana.resources for its model."""
    def request(wc):
        spec = wf.model_spec(config, wc.model)
        return rs.train_request(config, spec, rs.training_shape(SHAPE, spec, N_TEST), key)

    return request


def res_predict(key, images):
    """A prediction job's `mem_mb`/`runtime` for its images: `train` (every train image), `val`
    (the validation fold) or `shard` (a test shard); config's number, or the formula."""
    count = {"train": lambda wc: SHAPE.n_train, "val": lambda wc: rs.val_images(config, SHAPE),
             "shard": lambda wc: len(SHARDS[wc.shard])}[images]
    return lambda wc: rs.predict_request(
        config, [wf.model_spec(config, wc.model)], SHAPE, key, count(wc))


def res_export(key):
    """The export's `mem_mb`/`runtime`: the chain's models traced once each, as one photo."""
    return rs.predict_request(config, [wf.model_spec(config, m) for m in CUTOUTS.models], SHAPE,
                              key, 1, images=1)


def res_cutouts(key):
    """A cut-out shard's `mem_mb`/`runtime`: its photos one at a time through every model of the
    chain (config's number, or the formula)."""
    return lambda wc: rs.predict_request(
        config, [wf.model_spec(config, m) for m in CUTOUTS.models], SHAPE, key,
        len(CUTOUTS.shards[wc.shard]), images=1)


def get_group(name):
    """Rule `name`'s cluster group on SLURM (carvana.workflow.shard_group)."""
    return wf.shard_group(config, name)


def get_data(wildcards=None):
    """The data folder as a dependency (`_data`, not passed to the stage): the synthetic rule's
    output, or nothing (real files are listed by the rules that read them)."""
    return {"_data": DATA} if SYNTHETIC else {}


def get_ingest_input(wildcards):
    """Everything ingest reads: the synthetic folder, or every train image and mask."""
    if SYNTHETIC:
        return [DATA]
    return (
        [f"{DATA}/sample_submission.csv"]
        + glob(f"{DATA}/train_masks.csv")  # checked against the GIFs when present
        + sorted(glob(f"{DATA}/train/*.jpg"))
        + sorted(glob(f"{DATA}/train_masks/*.gif"))
    )


def get_test_shard_images(wildcards):
    """The images of one test shard (`_images`, a dependency): editing one image reruns only
    its shard."""
    if SYNTHETIC:
        return {"_images": [DATA]}
    return {"_images": [f"{DATA}/test/{i}.jpg" for i in SHARDS[wildcards.shard]]}


def get_sample_submission():
    return f"{DATA}/sample_submission.csv"


def get_truth(wildcards=None):
    """The kept test masks: the synthetic data's, or config `truth` (else none)."""
    truth = wf.truth_csv(config)
    return {"truth": truth} if truth else {}


def get_test_pred(source, shard):
    """Where a model's (or the ensemble's) test probabilities for a shard are."""
    return f"results/predict/{source}/test/{shard}"


def get_score_test_input(wildcards):
    """The kept test truth and every scored source's test shards (an error without truth)."""
    return wf.score_test_input(config, list(SHARDS))


def get_val_pred(model):
    """A model's probabilities of the validation images: a ladder model predicts every train
    image (`train_all`, for boxes and depth channels too), the others the validation fold."""
    return f"results/predict/{model}/train_all" if model in LADDER else f"results/predict/{model}/val"


def get_val_timing(model):
    """The timing of a trained model's prediction of the validation images (see get_val_pred)."""
    return get_val_pred(model) + "_timing.json"


def get_resume(model):
    """Where a training job keeps its resume checkpoint: outside the rule's outputs, so that
    Snakemake keeps it when the job is killed or fails."""
    return f"results/resume/{model}.pt"


def get_seed(wildcards):
    """A model's training seed: its own `seed`, else the top-level one."""
    return wf.model_seed(config, wildcards.model)


def get_fold_name(wildcards):
    """The name a fold copy of a ladder model trains under (out-of-fold maps)."""
    return oof.fold_name(wildcards.model, int(wildcards.k), int(wildcards.fold))


def get_train_summary(wildcards):
    """A trained model's training summary (the ensemble has none)."""
    if wildcards.model in TRAINED:
        return f"results/models/{wildcards.model}/train.json"
    return []


def get_lowres_inputs(wildcards):
    """A ladder model's extra inputs: the weights of the earlier ladder model it starts from,
    if any; a pseudo-label round's labels."""
    spec = wf.model_spec(config, wildcards.model)
    inputs = dict(wf.init_weights(config, wildcards.model))
    if spec.get("pseudo"):
        inputs["pseudo_labels"] = get_pseudo_labels(spec)
    return inputs


def get_tile_model_inputs(wildcards):
    """A tile model's extra inputs: the depth model's predictions, the weights it starts from."""
    spec = wf.model_spec(config, wildcards.model)
    inputs = {}
    if spec.get("depth_from"):
        inputs["depth"] = wf.depth_train_maps(config, wildcards.model)
    inputs.update(wf.init_weights(config, wildcards.model))
    if spec.get("pseudo"):
        inputs.update(get_pseudo_training(spec))
    return inputs


def get_pseudo_training(spec):
    """A pseudo-label round's test photos: every shard's labels, boxes and depth channel."""
    depth = spec.get("depth_from")
    inputs = {
        "pseudo_labels": get_pseudo_labels(spec),
        "pseudo_boxes": expand("results/bbox/test/{shard}.csv", shard=SHARDS),
    }
    if depth:
        inputs["pseudo_depth"] = [get_test_pred(depth, s) for s in SHARDS]
    return inputs


def get_pseudo_labels(spec):
    """A pseudo-label round's label folders, one a test shard."""
    return expand("results/pseudo/r{r}/{shard}", r=spec["pseudo"]["round"], shard=SHARDS)


def get_pseudo_sources(wildcards):
    """The models (name -> weight) whose test average labels a pseudo-label round."""
    return wf.pseudo_sources(config, int(wildcards.round))


def get_ensemble_weights(wildcards=None):
    """The weights chosen on validation, when the ensemble's are (else none)."""
    return {"ensemble_weights": wf.ENSEMBLE_WEIGHTS} if wf.weights_chosen(config) else {}


def get_weight_threshold():
    """The threshold the ensemble's weights are chosen at: the submission's (0.5 for 'best')."""
    threshold = config["submission"]["threshold"]
    return 0.5 if threshold == "best" else float(threshold)


def get_depth_input(split):
    """The depth model's predictions of the same images, for a 4-channel model (else none)."""

    def inputs(wildcards):
        source = wf.model_spec(config, wildcards.model).get("depth_from")
        if not source:
            return {}
        if split == "train":
            return {"depth": f"results/predict/{source}/train_all"}
        return {"depth": get_test_pred(source, wildcards.shard)}

    return inputs


def get_threshold_input():
    """The threshold analysis, when the submission threshold is the best on validation."""
    if config["submission"]["threshold"] == "best":
        return {"threshold_choice": "results/metrics/threshold.json"}
    return {}


def get_worst_models():
    """Models whose worst validation predictions are drawn: `analysis: worst_models`, else the
    submission's source."""
    return list(config.get("analysis", {}).get("worst_models", [config["submission"]["source"]]))


def get_analysis_outputs(wildcards=None):
    """Every analysis figure and table (the bbox analysis only when tile models are configured)."""
    names = ["model_comparison", "ladder", "threshold_curves", "learning_curves"]
    if TILE_MODELS:
        names.append("bbox")
    return [
        *expand("results/analysis/{name}.{ext}", name=names, ext=["png", "csv"]),
        *expand(
            "results/analysis/worst/{model}.{ext}", model=get_worst_models(), ext=["png", "csv"]
        ),
        *wf.truth_outputs(config, "analysis"),
    ]


def get_final_outputs():
    """Everything `all` builds: the submission, every model's scores, the analysis."""
    outputs = [
        "results/submission.csv.gz",
        "results/submission_check.json",
        "results/metrics/summary.csv",
        "results/metrics/threshold.json",
        *expand("results/metrics/{model}.json", model=SCORED),
        *expand("results/models/{model}/learning_curve.png", model=TRAINED),
        *wf.truth_outputs(config, "scores"),
    ]
    return outputs + get_analysis_outputs()


# --- cut-outs of a person's photos (rules/cutouts.smk) ---------------------------------

CUTOUTS = cut.plan(config)
CUTOUT_SETTINGS = config.get("cutouts") or {}


def get_cutout_shard_inputs(wildcards):
    """A shard's photos and the weights of every model of the chain."""
    return {
        "_photos": list(CUTOUTS.shard_photos(wildcards.shard).values()),
        "_weights": list(CUTOUTS.weights().values()),
    }


def get_chain_inputs(wildcards=None):
    """The chosen threshold's analysis, when the cut-outs' threshold is the best on validation;
    the ensemble's weights, when chosen on validation."""
    inputs = get_ensemble_weights()
    if CUTOUTS.threshold == "best":
        inputs["threshold_json"] = "results/metrics/threshold.json"
    return inputs


def get_cutout_shard_dirs(wildcards=None):
    """Every shard's folder (an error saying how to give photos when photos_dir is unset)."""
    CUTOUTS.require_photos()
    return expand(f"{cut.SHARD_DIR}/{{shard}}", shard=CUTOUTS.shards)


def get_cutout_photo_files():
    """Each photo's mask and RGBA cut-out (none when photos_dir is unset)."""
    return CUTOUTS.photo_files()


def get_cutout_outputs(wildcards=None):
    """Every final cut-out file (an error saying how to give photos when photos_dir is unset)."""
    CUTOUTS.require_photos()
    return CUTOUTS.outputs()
