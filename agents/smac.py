"""SMAC3's multi-fidelity optimiser as an ask-and-tell agent (issue 18).

SMAC3 (Lindauer et al. 2022, "SMAC3: A Versatile Bayesian Optimization Package for
Hyperparameter Optimization") is what many practitioners run for multi-fidelity search. Its
``MultiFidelityFacade`` is BOHB's recipe with SMAC's parts: Hyperband brackets over the training
budget (``eta=3``) and a random-forest model proposing the configurations, asked and told one
trial at a time. :class:`SMACHyperband` hands its trials to the runner: the budget SMAC asks for
is the epoch count (rounded; its Hyperband grid from 3 to the env's 30 epochs is 3.33, 10 and
30), at the table's patience, and a promotion to a larger budget resumes the earlier training
(:mod:`agents.runner`). As an :class:`~agents.base.AskTellAgent` it also runs with parallel
workers (:mod:`agents.parallel`).

The search space becomes a ConfigSpace (:func:`configuration_space`): one categorical per slot
with more than one choice in the space, active exactly where the env's masks leave a choice
(``layer2`` only after a layer, ``aggr1`` only for a GraphSAGE ``layer1`` with several
aggregators, ``combine`` only with a layer); :func:`decisions` maps a configuration back. Every
architecture of the space is one configuration and back (tested on the core's 708).

SMAC never proposes a configuration again at a budget it has run. When its selector finds no
new one (16 tries of its model, then random), ``ask`` has nothing to start: with evaluations
running it waits for them, with none the search ends, short of its budget if need be. On the
core's 708 architectures that happens after about 300 distinct ones, about 1.1 simulated hours
on Books-20core (``benchmarks/RESULTS.md``, multi-fidelity search).

SMAC3 is optional (``pip install 'recnas-books[smac]'``). The agent leaves logging alone (SMAC's
``logging_level=False``) and writes SMAC's run files to a temporary directory, removed after
the search.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

from agents.base import AskTellAgent, Proposal, restored_global_rngs, valid_choices
from agents.multifidelity import rungs
from agents.runner import SearchRunner, Trial
from nasenv.space import AGGREGATED_LAYERS, NO_AGGR, STOP, Choice, SearchSpace


def _import_smac() -> Any:
    try:
        import smac
    except ImportError as error:
        raise ImportError(
            "the smac-hyperband agent needs SMAC3: pip install 'recnas-books[smac]'"
        ) from error
    return smac


def configuration_space(space: SearchSpace, seed: int = 0) -> Any:
    """``space`` as a ConfigSpace ``ConfigurationSpace`` (see the module docstring): values are
    the choices' strings, so that numbers keep their exact spelling."""
    from ConfigSpace import Categorical, ConfigurationSpace, EqualsCondition, InCondition

    cs = ConfigurationSpace(seed=seed)
    params: dict[str, Any] = {}
    conditions: list[Any] = []
    for slot in space.slots:
        choices = space.slot_choices(slot.name)
        if slot.name.startswith("aggr"):
            choices = [c for c in choices if c != NO_AGGR]
        if len(choices) > 1:
            params[slot.name] = Categorical(slot.name, [str(c) for c in choices])
    cs.add(list(params.values()))
    for slot in space.slots:
        name = slot.name
        if name not in params:
            continue
        depth = int(name[-1]) if name[-1].isdigit() else None
        if name.startswith("layer") and depth is not None and depth > 1:
            parent = f"layer{depth - 1}"
            layers = [c for c in space.slot_choices(parent) if c != STOP]
            if parent in params and STOP in space.slot_choices(parent):
                conditions.append(InCondition(params[name], params[parent], layers))
        elif name.startswith("aggr") and f"layer{depth}" in params:
            aggregated = [c for c in space.slot_choices(f"layer{depth}") if c in AGGREGATED_LAYERS]
            layer = params[f"layer{depth}"]
            conditions.append(
                EqualsCondition(params[name], layer, aggregated[0])
                if len(aggregated) == 1
                else InCondition(params[name], layer, aggregated)
            )
        elif name == "combine" and "layer1" in params and STOP in space.slot_choices("layer1"):
            layers = [c for c in space.slot_choices("layer1") if c != STOP]
            conditions.append(InCondition(params[name], params["layer1"], layers))
        elif name == "encoder" and "items" in params and "id" in space.slot_choices("items"):
            texts = [c for c in space.slot_choices("items") if c != "id"]
            conditions.append(InCondition(params[name], params["items"], texts))
    cs.add(conditions)
    return cs


def decisions(config: Mapping[str, Any], space: SearchSpace) -> list[Choice]:
    """The decisions of the architecture a configuration stands for: each slot's value where
    the masks leave a choice, the forced one elsewhere.

    Raises:
        ValueError: a slot with a choice that the configuration does not set, or sets to a value
            the masks refuse (a configuration of another space).
    """
    values: list[Choice] = []
    for slot in space.slots:
        allowed = valid_choices(space, values)
        if len(allowed) == 1:
            values.append(allowed[0])
            continue
        text = config.get(slot.name)
        match = [c for c in allowed if str(c) == str(text)]
        if not match:
            raise ValueError(
                f"configuration {dict(config)} gives {slot.name}={text!r}; allowed after the "
                f"decisions before it: {allowed}"
            )
        values.append(match[0])
    return values


@dataclass
class SMACHyperband(AskTellAgent):
    """SMAC3's ``MultiFidelityFacade`` (random forest + Hyperband), asked and told per trial.

    Args:
        min_epochs: 3, the smallest budget (as :class:`agents.multifidelity.Hyperband`).
        eta: 3, Hyperband's reduction factor (SMAC's default, Li et al. 2017).
        n_configs: ``None``: the facade's default random initial design (10 configurations
            per hyperparameter, at most a quarter of the trials: 60 on the core space); an
            integer sets its size.
    """

    name: ClassVar[str] = "smac-hyperband"
    seed: int = 0
    min_epochs: int = 3
    eta: int = 3
    n_configs: int | None = None

    @contextmanager
    def proposer(self, runner: SearchRunner) -> Iterator[_SMACProposer]:
        _import_smac()
        from smac import MultiFidelityFacade, Scenario
        from smac.intensifier.hyperband import Hyperband

        rungs(runner, self.min_epochs, self.eta)  # checks the back end, eta and min_epochs
        full = cast(tuple[int, int], runner.full_fidelity)
        with (
            tempfile.TemporaryDirectory(prefix="recnas-smac-") as out,
            restored_global_rngs(),
            _quiet_smac(),
        ):
            scenario = Scenario(
                configuration_space(runner.space, self.seed),
                deterministic=True,
                n_trials=2**31 - 1,  # the runner's budget stops the search
                min_budget=self.min_epochs,
                max_budget=full[0],
                output_directory=Path(out),
                seed=self.seed,
            )
            extra: dict[str, Any] = {}
            if self.n_configs is not None:
                extra["initial_design"] = MultiFidelityFacade.get_initial_design(
                    scenario, n_configs=self.n_configs
                )
            smac = MultiFidelityFacade(
                scenario,
                target_function=_asked_and_told,
                intensifier=Hyperband(scenario, eta=self.eta, seed=self.seed),
                overwrite=True,
                logging_level=False,  # SMAC's own setting replaces the root logger's
                **extra,
            )
            yield _SMACProposer(smac, runner.space, full)


@contextmanager
def _quiet_smac() -> Iterator[None]:
    """SMAC's logger at ERROR (its lines per fallback to random sampling) and without the
    numerical warnings of its model on few data; both restored afterwards."""
    logger = logging.getLogger("smac")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    finally:
        logger.setLevel(previous)


def _asked_and_told(config: Any, seed: int = 0, budget: float = 0.0) -> float:
    raise RuntimeError("the smac-hyperband agent evaluates through ask and tell only")


class _SMACProposer:
    """SMAC's ask and tell; the budget it asks for, rounded, is the epoch count."""

    def __init__(self, smac: Any, space: SearchSpace, full: tuple[int, int]) -> None:
        self.smac, self.space, self.full = smac, space, full

    def ask(self) -> Proposal | None:
        from smac.main.exceptions import ConfigurationSpaceExhaustedException

        try:
            info = self.smac.ask()
        except (ConfigurationSpaceExhaustedException, StopIteration):
            # SMAC found no new configuration to start (every one tried, or none left for a
            # new bracket while the running trials block the others): wait for a result
            return None
        epochs = min(self.full[0], max(1, round(float(info.budget))))
        fidelity = None if epochs == self.full[0] else (epochs, self.full[1])
        return Proposal(decisions(info.config, self.space), fidelity, tag=info)

    def tell(self, proposal: Proposal, trial: Trial) -> None:
        from smac.runhistory.dataclasses import TrialValue

        value = TrialValue(cost=1.0 - trial.reward, time=trial.cost_seconds)
        self.smac.tell(proposal.tag, value)
