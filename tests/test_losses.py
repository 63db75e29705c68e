"""The losses by name (BCE + soft Dice, the Lovász hinge) and the exponential average of the
weights: known values, ignored pixels, and training with each."""

from __future__ import annotations

import pytest
import torch

from carvana.losses import lovasz_hinge, segmentation_loss
from carvana.schedule import ExponentialAverage
from carvana.training import AugmentConfig, TrainConfig, TrainData, evaluate, train

NO_AUGMENT = AugmentConfig(hflip=0, shift=0, scale=0, hue=0, saturation=0, value=0)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models: one thread (see conftest)."""


def _t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, -1)


def test_lovasz_hinge_known_values() -> None:
    # sure and right: every hinge error below 0, loss 0
    assert float(lovasz_hinge(_t([4.0, -3.0]), _t([1, 0]))) == 0.0
    # logits 0: every error is 1 and the IoU loss of predicting nothing is 1
    assert float(lovasz_hinge(_t([0.0, 0.0, 0.0]), _t([1, 0, 1]))) == pytest.approx(1.0)
    # errors 1.5 (background) then 0.5 (car): Jaccard steps 0.5 and 0.5 -> 1.5/2 + 0.5/2
    assert float(lovasz_hinge(_t([0.5, 0.5]), _t([1, 0]))) == pytest.approx(1.0)
    # two images: the mean of each one's loss
    two = lovasz_hinge(torch.cat([_t([4.0, -3.0]), _t([0.5, 0.5])]),
                       torch.cat([_t([1, 0]), _t([1, 0])]))
    assert float(two) == pytest.approx(0.5)


def test_lovasz_hinge_leaves_ignored_pixels_out() -> None:
    logits = torch.tensor([[[[0.5, 0.5, -2.0, 3.0]]]], requires_grad=True)
    target, valid = _t([1, 0, 1, 0]), _t([1, 1, 0, 0])
    loss = lovasz_hinge(logits, target, valid=valid)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(float(lovasz_hinge(_t([0.5, 0.5]), _t([1, 0]))))
    assert logits.grad is not None and logits.grad[0, 0, 0, 2:].abs().sum() == 0
    assert logits.grad[0, 0, 0, :2].abs().sum() > 0
    empty = lovasz_hinge(logits, target, valid=torch.zeros_like(target))
    assert float(empty.detach()) == 0.0


def test_unknown_loss_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="bce_dice, lovasz"):
        segmentation_loss("focal", _t([0.0]), _t([1]))
    with pytest.raises(ValueError, match="fine_tune_loss 'dice'"):
        TrainConfig.from_dict({"fine_tune_loss": "dice"})
    with pytest.raises(ValueError, match="ema"):
        TrainConfig.from_dict({"ema": 1.0})


def test_exponential_average_known_values() -> None:
    avg = ExponentialAverage({"w": torch.zeros(2), "n": torch.tensor(0)}, decay=0.5)
    avg.update({"w": torch.ones(2), "n": torch.tensor(7)})  # warm-up decay 2/11 < 0.5
    assert avg.state["w"].tolist() == pytest.approx([9 / 11, 9 / 11])
    assert int(avg.state["n"]) == 7  # integers are copied, not averaged
    avg.update({"w": torch.ones(2), "n": torch.tensor(8)})  # decay 3/12 = 0.25
    assert avg.state["w"].tolist() == pytest.approx([1 - 0.25 * 2 / 11] * 2)
    saved = avg.state_dict()
    again = ExponentialAverage({"w": torch.zeros(2), "n": torch.tensor(0)}, decay=0.5)
    again.load_state_dict(saved)
    assert again.updates == 2 and torch.equal(again.state["w"], avg.state["w"])


def _train(settings: dict, on_step=None) -> tuple[dict, object, torch.nn.Module]:
    from train_child import Blobs, tiny_model

    cfg = TrainConfig(batch_size=4, **settings)
    cfg.augment = NO_AUGMENT
    model = tiny_model()
    state, history, _ = train(model, TrainData(Blobs(16, 0), Blobs(4, 1)), cfg,
                              torch.device("cpu"), 1, on_step=on_step)
    return state, history, model


def test_kept_weights_are_the_average_with_ema() -> None:
    from train_child import tiny_model

    raw: list[dict] = []
    state, history, model = _train(
        {"steps": 6, "lr": 0.01, "ema": 0.8, "eval_every_steps": 6},
        on_step=lambda _, m: raw.append({k: v.clone() for k, v in m.state_dict().items()}))
    expected = ExponentialAverage(tiny_model().state_dict(), 0.8)
    for weights in raw:
        expected.update(weights)
    assert history["step"].tolist() == [6]
    for name, value in state.items():
        assert torch.allclose(value, expected.state[name], atol=1e-6), name
    assert not all(torch.equal(state[k], raw[-1][k]) for k in state)  # not the raw weights
    model.load_state_dict(state)  # the history's Dice is the average's own
    from train_child import Blobs
    loader = torch.utils.data.DataLoader(Blobs(4, 1), batch_size=4)
    assert evaluate(model, loader, torch.device("cpu"), amp=False)[1] == pytest.approx(
        history["val_dice"].iloc[-1])


@pytest.mark.parametrize("settings", [
    {"loss": "lovasz"},
    {"loss": "bce_dice", "fine_tune_epochs": 5, "fine_tune_loss": "lovasz"},
    {"loss": "bce_dice", "ema": 0.9},
])
def test_every_loss_and_the_average_learn_the_blobs(settings: dict) -> None:
    _, history, _ = _train({"steps": 60, "lr": 0.01, "eval_every_steps": 20,
                            "early_stopping_patience": 100, **settings})
    untrained = _train({"steps": 1, "lr": 1e-9})[1]["val_dice"].iloc[-1]
    assert untrained < 0.5
    assert history["val_dice"].max() > 0.9, history
