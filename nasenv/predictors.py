"""The version 1 surrogate's two predictors: an ARD kernel ridge and a small neural network.

* **ARD kernel ridge.** The kernel is ``exp(-sum_j w_j d_j(a, b))``, where ``d_j`` is slot
  ``j``'s distance (1 where two categorical decisions differ, the log2 distance over the slot's
  range for ``dim``, ``lr``, ``reg``): one weight per slot instead of the version 0 kernel's
  single ``gamma``, so that a decision that matters (the learning rate) can count for more than
  one that barely does (the penalty). The weights, the signal variance and the noise variance are
  those of the Gaussian process with that kernel that maximise the marginal likelihood of the
  training targets (each architecture's noise divided by its number of seeds), found by L-BFGS
  on its exact gradient. The fitted noise standard deviation is a check on the seed noise
  measured between seeds.
* **MLP.** scikit-learn's ``MLPRegressor`` (two hidden layers of 128, ReLU, early stopping) on
  :func:`features`, standardised targets, an average over several seeds; saved as its weight
  matrices and evaluated here in numpy.

* **Ranking MLP** (version 2). The same inputs and shape, trained in torch on half the squared
  error and half a pairwise logistic loss on the order of random pairs of each batch, with early
  stopping on the Kendall tau of a tenth of the training architectures held aside: the score a
  surrogate is judged by is an order, and a squared error alone lets the collapsed trainings
  (far below the rest) pull the fit. Saved in the same arrays as the MLP.

Fitting needs SciPy and scikit-learn (the ``fit`` extra; the ranking MLP torch); predicting
needs numpy only.
``benchmarks/surrogate_models.py`` compares them with the version 0 kernel and boosted trees.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from nasenv.space import SLOTS, Architecture

NUMERIC_SLOTS = ("dim", "lr", "reg")
"""The slots coded by their log2 value (the others by their choice index)."""
MLP_HIDDEN = (128, 128)
MLP_SEEDS = 5

_IS_NUMERIC = [slot.name in NUMERIC_SLOTS for slot in SLOTS]
_SIZES = [
    1 if numeric else len(slot.choices) for slot, numeric in zip(SLOTS, _IS_NUMERIC, strict=True)
]
_OFFSETS = np.cumsum([0, *_SIZES])[:-1]


def encode(archs: Sequence[Architecture]) -> np.ndarray:
    """``(n, len(SLOTS))`` codes: the choice index of categorical slots, a log value of numeric
    ones (``reg = 0`` counts as 1e-6)."""
    out = np.empty((len(archs), len(SLOTS)))
    for i, arch in enumerate(archs):
        for j, (slot, value) in enumerate(zip(SLOTS, arch.decisions(), strict=True)):
            if slot.name in NUMERIC_SLOTS:
                out[i, j] = math.log2(max(float(value), 1e-6))
            else:
                out[i, j] = slot.choices.index(value)
    return out


def features(archs: Sequence[Architecture]) -> np.ndarray:
    """``(n, 43)`` network inputs: one-hot categorical slots and log2 numeric ones (``reg = 0``
    as 1e-6)."""
    return features_from_codes(encode(archs))


def features_from_codes(codes: np.ndarray) -> np.ndarray:
    """:func:`features` from the codes :func:`encode` writes (the choice index of a categorical
    slot, the log2 value of a numeric one)."""
    x = np.zeros((len(codes), sum(_SIZES)))
    rows = np.arange(len(codes))
    for j, numeric in enumerate(_IS_NUMERIC):
        if numeric:
            x[:, _OFFSETS[j]] = codes[:, j]
        else:
            x[rows, _OFFSETS[j] + codes[:, j].astype(int)] = 1.0
    return x


def slot_distances(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """``(len(SLOTS), n_a, n_b)`` per-slot distances of two :func:`nasenv.surrogate._split`
    encodings, in slot order (categorical slots first and numeric ones last in ``a``/``b``,
    :data:`SLOT_ORDER` maps them back)."""
    mismatch = (a[0][:, None, :] != b[0][None, :, :]).astype(np.float32)
    numeric = np.abs(a[1][:, None, :] - b[1][None, :, :]).astype(np.float32)
    return np.concatenate([mismatch, numeric], axis=2).transpose(2, 0, 1)[SLOT_ORDER]


SLOT_ORDER = np.argsort(
    [i for i, numeric in enumerate(_IS_NUMERIC) if not numeric]
    + [i for i, numeric in enumerate(_IS_NUMERIC) if numeric]
)
"""Where each slot's distance sits in the concatenation of categorical then numeric ones."""


def weighted(distances: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_j w_j d_j``: the ARD distance from :func:`slot_distances`."""
    flat = distances.reshape(len(distances), -1)
    return (np.asarray(weights, np.float64) @ flat).reshape(distances.shape[1:])


def _negative_log_likelihood(
    theta: np.ndarray, d: np.ndarray, y: np.ndarray, seeds: np.ndarray
) -> tuple[float, np.ndarray]:
    """The Gaussian process's negative log marginal likelihood (constant dropped) and its
    gradient in ``theta = log [w_1 .. w_S, signal variance, noise variance]``."""
    slots = d.shape[0]
    w, signal, noise = np.exp(theta[:slots]), math.exp(theta[slots]), math.exp(theta[slots + 1])
    k = np.exp(-weighted(d, w))
    chol = np.linalg.cholesky(signal * k + np.diag(noise / seeds))
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
    value = 0.5 * float(y @ alpha) + float(np.log(np.diag(chol)).sum())
    inverse = np.linalg.inv(chol)
    m = np.outer(alpha, alpha) - inverse.T @ inverse  # d(log likelihood) = tr(m dK) / 2
    mk = m * k * signal
    gradient = np.empty_like(theta)
    for j in range(slots):
        gradient[j] = 0.5 * w[j] * float((mk * d[j]).sum())
    gradient[slots] = -0.5 * float(mk.sum())
    gradient[slots + 1] = -0.5 * float((np.diag(m) * noise / seeds).sum())
    return value, gradient


def fit_ard(
    d: np.ndarray, y: np.ndarray, seeds: np.ndarray, max_iter: int = 60
) -> tuple[np.ndarray, float, float]:
    """Marginal-likelihood ARD hyperparameters for the per-slot distances ``d`` of the training
    architectures and their centred targets ``y`` (each the mean of ``seeds`` trainings):
    ``(weights, signal variance, noise variance of one seed)``."""
    from scipy.optimize import minimize

    slots, log_variance = d.shape[0], math.log(float(np.var(y)) or 1e-12)
    start = np.concatenate([np.full(slots, math.log(0.3)), [log_variance, log_variance - 1.2]])
    found = minimize(
        _negative_log_likelihood,
        start,
        args=(d, np.asarray(y, float), np.asarray(seeds, float)),
        jac=True,
        method="L-BFGS-B",
        # Bounded so that the kernel matrix stays well conditioned: a weight above e^5 makes an
        # architecture's neighbours irrelevant, and the noise at least 1e-6 of the variance.
        bounds=[(-12.0, 5.0)] * slots
        + [(log_variance - 7.0, log_variance + 7.0), (log_variance - 14.0, log_variance + 2.0)],
        options={"maxiter": max_iter},
    )
    theta = found.x
    return np.exp(theta[:slots]), math.exp(theta[slots]), math.exp(theta[slots + 1])


def ard_alpha(
    d: np.ndarray, y: np.ndarray, seeds: np.ndarray, weights: np.ndarray, signal: float,
    noise: float,
) -> np.ndarray:  # fmt: skip
    """Dual coefficients: a query's prediction is ``exp(-weighted(d_query, weights)) @ alpha``
    plus the training mean (the signal variance is folded in)."""
    k = signal * np.exp(-weighted(d, weights)) + np.diag(noise / np.asarray(seeds, float))
    return signal * np.linalg.solve(k, y)


def fit_mlp(x: np.ndarray, y: np.ndarray, seeds: int = MLP_SEEDS) -> dict[str, np.ndarray]:
    """``seeds`` networks on inputs ``x`` and targets ``y``, as arrays: ``mlp_scale`` (target
    mean and std), then ``mlp_<member>_<layer>_w`` / ``_b``."""
    from sklearn.neural_network import MLPRegressor

    mean, std = float(y.mean()), float(y.std()) or 1.0
    arrays = {"mlp_scale": np.array([mean, std])}
    for member in range(seeds):
        model = MLPRegressor(
            hidden_layer_sizes=MLP_HIDDEN, alpha=1e-3, learning_rate_init=1e-3, max_iter=500,
            early_stopping=True, n_iter_no_change=20, random_state=member,
        )  # fmt: skip
        model.fit(x, (y - mean) / std)
        for layer, (w, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
            arrays[f"mlp_{member}_{layer}_w"] = w
            arrays[f"mlp_{member}_{layer}_b"] = b
    return arrays


RANK_PAIR_WEIGHT = 0.5
"""The ranking MLP's loss: ``(1 - w)`` squared error plus ``w`` pairwise logistic loss."""


def fit_rank_mlp(
    x: np.ndarray, y: np.ndarray, seeds: int = MLP_SEEDS, pair_weight: float = RANK_PAIR_WEIGHT,
    max_epochs: int = 300, patience: int = 25,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The ranking MLP: ``seeds`` networks in torch (module docstring), returned as the arrays
    :func:`fit_mlp` writes, so :func:`networks` and :func:`mlp_forward` read them. Seeded by
    member; torch's global RNG and thread settings are left alone."""
    import torch

    from nasenv.surrogate import kendall_tau

    mean, std = float(y.mean()), float(y.std()) or 1.0
    inputs = torch.tensor(x, dtype=torch.float32)
    targets = torch.tensor((y - mean) / std, dtype=torch.float32)
    arrays = {"mlp_scale": np.array([mean, std])}
    for member in range(seeds):
        generator = torch.Generator().manual_seed(member)
        order = torch.randperm(len(inputs), generator=generator)
        held, train = order[: len(order) // 10], order[len(order) // 10 :]
        sizes = [x.shape[1], *MLP_HIDDEN, 1]
        with torch.random.fork_rng(devices=[]):  # Linear's own initialisation draws globally
            layers = [torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes)]
        for layer in layers:  # torch's default initialisation, from the member's generator
            bound = 1.0 / math.sqrt(layer.in_features)
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        parts: list[torch.nn.Module] = []
        for layer in layers:
            parts += [layer, torch.nn.ReLU()]
        network = torch.nn.Sequential(*parts[:-1])
        optimiser = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=1e-4)
        best, best_state, stale = -math.inf, None, 0
        for _ in range(max_epochs):
            for batch in train[torch.randperm(len(train), generator=generator)].split(200):
                predicted, wanted = network(inputs[batch]).squeeze(1), targets[batch]
                loss = (1 - pair_weight) * ((predicted - wanted) ** 2).mean()
                i, j = torch.randint(len(batch), (2, 2000), generator=generator)
                sign = torch.sign(wanted[i] - wanted[j])
                margin = 2.0 * sign * (predicted[i] - predicted[j])
                loss = loss + pair_weight * torch.nn.functional.softplus(-margin).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            with torch.no_grad():
                score = kendall_tau(network(inputs[held]).squeeze(1).numpy(), targets[held].numpy())
            if score > best + 1e-4:
                best, stale = score, 0
                best_state = {k: v.clone() for k, v in network.state_dict().items()}
            else:
                stale += 1
                if stale > patience:
                    break
        assert best_state is not None
        network.load_state_dict(best_state)
        for index, layer in enumerate(layers):
            arrays[f"mlp_{member}_{index}_w"] = layer.weight.detach().numpy().T.astype(np.float64)
            arrays[f"mlp_{member}_{index}_b"] = layer.bias.detach().numpy().astype(np.float64)
    return arrays


Network = tuple[list[tuple[np.ndarray, np.ndarray]], float, float]
"""Per layer the members' weights ``(members, inputs, outputs)`` and biases ``(members, 1,
outputs)``, then the target mean and std: :func:`networks`."""


def networks(arrays: dict[str, np.ndarray], prefix: str = "mlp_") -> Network:
    """The networks :func:`fit_mlp` saved in ``arrays`` under keys ``<prefix><member>_...``
    and ``<prefix>scale``, ready for :func:`mlp_forward`."""
    keys = [key[len(prefix) :].split("_") for key in arrays if key.startswith(prefix)]
    members = sorted({int(k[0]) for k in keys if k[-1] == "w"})
    layers = sorted({int(k[1]) for k in keys if k[-1] == "w"})
    stacked = [
        (
            np.stack([arrays[f"{prefix}{m}_{i}_w"] for m in members]),
            np.stack([arrays[f"{prefix}{m}_{i}_b"] for m in members])[:, None, :],
        )
        for i in layers
    ]
    mean, std = (float(v) for v in arrays[f"{prefix}scale"])
    return stacked, mean, std


def mlp_forward(network: Network, x: np.ndarray) -> np.ndarray:
    """The mean prediction of ``network``'s members on inputs ``x``."""
    layers, mean, std = network
    h = x[None]
    for i, (w, b) in enumerate(layers):  # every member at once: batched products
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h[:, :, 0].mean(axis=0) * std + mean


def mlp_predict(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The mean prediction of the networks :func:`fit_mlp` returned (``arrays``) on ``x``."""
    return mlp_forward(networks(arrays), x)
