"""Tree-structured Parzen Estimator through Optuna's own sampler (Bergstra et al. 2011,
"Algorithms for Hyper-Parameter Optimization"; Watanabe 2023, "Tree-Structured Parzen
Estimator: Understanding Its Algorithm Components")."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from agents.base import AskTellAgent, Proposal, valid_choices
from agents.runner import SearchRunner, Trial
from nasenv.space import Choice, SearchSpace


@contextlib.contextmanager
def quiet_optuna(agent: str) -> Iterator[Any]:
    """Optuna, imported for ``agent`` (one line naming the extra if it is missing), at WARNING
    level (no line per trial) and without its experimental-feature warnings; the logger is
    process-wide, so its previous level is restored afterwards, whatever happens."""
    try:
        import optuna
    except ImportError as error:
        message = f"the {agent} agent needs Optuna: pip install 'recnas-books[rl]'"
        raise ImportError(message) from error
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield optuna
    finally:
        optuna.logging.set_verbosity(previous)


@dataclass
class TPE(AskTellAgent):
    """Define-by-run TPE over the slots, through Optuna's ask and tell.

    Conditional decisions follow the masks: a slot with one valid choice is not a parameter, and
    a slot's parameter is named after its valid choice set (``aggr1|mean,max,sum``), so that TPE
    models each set of alternatives separately instead of mixing incompatible ones.

    Args:
        n_startup_trials: 10, random architectures before TPE models the results (Optuna's
            default).
        multivariate: ``True``: model the decisions jointly (Falkner et al. 2018; Optuna
            recommends it for dependent parameters); ``group=True`` splits the conditional space
            into subspaces.

    With several evaluations running (:mod:`agents.parallel`), the sampler's constant liar
    (``constant_liar=True``) counts each running trial as worse than every finished one, so that
    parallel asks spread out instead of proposing the same architecture again.
    """

    name: ClassVar[str] = "tpe"
    seed: int = 0
    n_startup_trials: int = 10
    multivariate: bool = True

    @contextlib.contextmanager
    def proposer(self, runner: SearchRunner) -> Iterator[_StudyProposer]:
        with quiet_optuna(self.name) as optuna:
            sampler = tpe_sampler(optuna, self.seed, self.n_startup_trials, self.multivariate)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            yield _StudyProposer(study, runner.space)


class _StudyProposer:
    """An Optuna study: each ask is a new trial, each result its value."""

    def __init__(self, study: Any, space: SearchSpace) -> None:
        self.study, self.space = study, space

    def ask(self) -> Proposal:
        trial = self.study.ask()
        return Proposal(suggest_architecture(trial, self.space), tag=trial)

    def tell(self, proposal: Proposal, trial: Trial) -> None:
        self.study.tell(proposal.tag, trial.reward)


def tpe_sampler(optuna: Any, seed: int, n_startup_trials: int, multivariate: bool) -> Any:
    """Optuna's ``TPESampler`` as the package's TPE agents use it (``group`` with
    ``multivariate``, which splits the conditional space into subspaces; the constant liar for
    running trials, Optuna's default since 5.0, named so that older versions do the same)."""
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=n_startup_trials,
        multivariate=multivariate,
        group=multivariate,
        constant_liar=True,
    )


def suggest_architecture(trial: Any, space: SearchSpace) -> list[Choice]:
    """The decisions of an architecture of ``space`` drawn from an Optuna ``trial``,
    define-by-run: a slot with one valid choice is no parameter, and a slot's parameter is named
    after its valid choice set (``aggr1|mean,max,sum``)."""
    values: list[Choice] = []
    for slot in space.slots:
        choices = valid_choices(space, values)
        if len(choices) == 1:
            values.append(choices[0])
            continue
        suggested = trial.suggest_categorical(f"{slot.name}|{','.join(map(str, choices))}", choices)
        assert suggested is not None  # one of choices; Optuna's type admits None
        values.append(suggested)
    return values
