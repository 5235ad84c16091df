"""The REINFORCE-trained LSTM controller of Zoph & Le (2017, "Neural Architecture Search with
Reinforcement Learning"), in the form ENAS (Pham et al. 2018, "Efficient Neural Architecture Search
via Parameter Sharing") and GraphNAS (Gao et al. 2020, "GraphNAS: Graph Neural Architecture Search
with Reinforcement Learning") use it: an LSTM emits one decision per step, fed the embedding of the
previous decision; its sampled architectures are trained and their validation scores reinforce the
decisions that produced them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from agents.base import Agent, single_threaded
from agents.runner import SearchRunner
from nasenv.env import N_ACTIONS
from nasenv.space import SLOTS, Choice, SearchSpace, Slot, choice_offsets


class Controller(nn.Module):
    """The LSTM policy: an embedding per (slot, choice) pair plus a start token, one LSTM cell
    and one linear head per slot, sized to that slot's choices.

    Args:
        hidden_size: size of the embeddings and of the LSTM state.
        temperature, tanh_constant: logits are ``tanh_constant * tanh(raw / temperature)``.
        generator: draws the initial weights, uniform in [-0.1, 0.1] with zero head biases
            (ENAS and GraphNAS).
        slots: the decisions, in order (a space's ``slots``; default the version 0
            :data:`~nasenv.space.SLOTS`).
    """

    def __init__(
        self,
        hidden_size: int,
        temperature: float,
        tanh_constant: float,
        generator: torch.Generator,
        slots: tuple[Slot, ...] = SLOTS,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.slots = slots
        self.offsets = choice_offsets(slots)
        self.start = self.offsets[-1]  # token of "no decision yet", after every (slot, choice)
        # the modules' default initialisation draws from torch's global generator: fork it (the
        # weights are all redrawn from ``generator`` below)
        with torch.random.fork_rng(devices=[]):
            self.embedding = nn.Embedding(self.start + 1, hidden_size)
            self.lstm = nn.LSTMCell(hidden_size, hidden_size)
            heads = [nn.Linear(hidden_size, len(slot.choices)) for slot in slots]
        self.heads = nn.ModuleList(heads)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-0.1, 0.1, generator=generator)
            for head in heads:
                head.bias.zero_()

    def step(
        self,
        slot: int,
        tokens: torch.Tensor,
        valid: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Log-probabilities ``(batch, N_ACTIONS)`` of the actions at ``slot``, zero outside the
        ``valid`` ones (``-inf`` in log space), given the previous decisions' ``tokens``
        ``(batch,)``; and the new LSTM state."""
        h, c = self.lstm(self.embedding(tokens), state)
        raw = self.heads[slot](h)
        logits = self.tanh_constant * torch.tanh(raw / self.temperature)
        padded = nn.functional.pad(logits, (0, N_ACTIONS - logits.shape[1]), value=float("-inf"))
        return torch.log_softmax(padded.masked_fill(~valid, float("-inf")), dim=1), (h, c)

    def score(
        self, actions: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy, each summed over the decisions, of complete episodes:
        ``actions`` ``(batch, slots)`` taken under the masks ``valid`` ``(batch, slots,
        N_ACTIONS)``."""
        tokens = torch.full((actions.shape[0],), self.start, dtype=torch.long)
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        log_prob = torch.zeros(actions.shape[0])
        entropy = torch.zeros(actions.shape[0])
        for slot in range(len(self.slots)):
            log_p, state = self.step(slot, tokens, valid[:, slot], state)
            log_prob = log_prob + log_p.gather(1, actions[:, slot : slot + 1])[:, 0]
            entropy = entropy - (log_p.exp() * log_p.masked_fill(~valid[:, slot], 0.0)).sum(1)
            tokens = actions[:, slot] + self.offsets[slot]
        return log_prob, entropy


@dataclass
class Reinforce(Agent):
    """An LSTM controller trained with REINFORCE and an exponential-moving-average baseline.

    Each episode is played on the environment: at every step the controller's logits for the
    current slot are restricted to the valid actions (``info["action_mask"]``), an action is
    sampled and passed to ``runner.step``. After ``batch_size`` finished architectures the
    controller takes one Adam step on

    ``loss = -mean_i[(R_i - b) * log p(arch_i)] - entropy_weight * mean_i[H_i]``

    where ``log p(arch_i)`` and the entropy ``H_i`` are summed over the episode's decisions and
    ``b`` is the baseline before the batch (the first batch's mean reward, then
    ``b <- baseline_decay * b + (1 - baseline_decay) * R`` for every reward). Sampling and the
    initial weights come from a ``torch.Generator`` seeded with ``seed``: a run is reproducible
    and leaves torch's global random state alone.

    Args:
        hidden_size: 100, the controller of ENAS ("an LSTM with 100 hidden units") and GraphNAS
            (``controller_hid=100``); Zoph & Le used two layers of 35.
        temperature: 5.0, the ENAS paper (its recurrent-cell search) and GraphNAS
            (``softmax_temperature``).
        tanh_constant: 2.5, the same sources (GraphNAS: ``tanh_c``): no choice gets more than
            e^5 (about 150) times the probability of another, which keeps the controller
            exploring.
        batch_size: 5 architectures per update. GraphNAS updates after every architecture
            (1 000 per search); ENAS's reference code aggregates 10 (micro) or 20 (macro search
            space) samples per update on CIFAR-10, and Zoph & Le had each controller replica
            sample 8. With a few hundred evaluations,
            20 would leave only 5 to 25 updates; 5 gives 20 to 100. Single-architecture updates
            were noisier: they settled on a wrong decision more often on the planted optimum.
        baseline_decay: 0.95, GraphNAS (``ema_baseline_decay``). ENAS's TensorFlow code uses
            0.99, which over a few hundred evaluations would lag behind an improving controller.
        entropy_weight: 0.0001, ENAS and GraphNAS (``entropy_coeff``), here as a regulariser on the
            loss (GraphNAS's ``entropy_mode="regularizer"``) rather than added to the reward.
        learning_rate: 0.01, the Adam step size. ENAS and GraphNAS use 3.5e-4, over 1 000 (GraphNAS)
            to tens of thousands (ENAS) of sampled architectures; the 20 to 100 updates of a
            few-hundred-evaluation budget would barely move the policy from its start, and the
            controller would be random search. With a planted optimum
            (``tests/test_agents_rl.py``), 3.5e-3 was still near random after 100 evaluations,
            0.02 and 0.05 more often settled on a wrong decision early, and 0.01 found the
            optimum within 300 evaluations in every seed tried.
        avoid_repeats: ``False``, as in the sources, whose controllers sample with replacement.
            ``True``: the controller draws each architecture on its own first, under the env's
            masks narrowed to the decisions below which some architecture is still untried in
            this search, so none is evaluated twice before every one has been. Every evaluation
            counts, repeats included (:mod:`agents.runner`), and a sharp controller, such as a
            pretrained one, otherwise spends most of its budget on repeats. The update is
            unchanged: the log-probability under the env's masks.
        initial_weights: controller weights to start from (``state_dict`` of an earlier
            search's :attr:`weights`, for transfer across tasks, see :mod:`agents.transfer`);
            ``None``: fresh weights from ``seed``. Not a hyperparameter: left out of reports.

    After a search, :attr:`weights` holds the trained controller's ``state_dict``.
    """

    name: ClassVar[str] = "reinforce"
    seed: int = 0
    hidden_size: int = 100
    temperature: float = 5.0
    tanh_constant: float = 2.5
    batch_size: int = 5
    baseline_decay: float = 0.95
    entropy_weight: float = 1e-4
    learning_rate: float = 0.01
    avoid_repeats: bool = False
    initial_weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.weights: dict[str, torch.Tensor] | None = None
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        if self.temperature <= 0 or self.tanh_constant <= 0:
            raise ValueError("temperature and tanh_constant must be > 0")

    def search(self, runner: SearchRunner) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        controller = Controller(
            self.hidden_size, self.temperature, self.tanh_constant, generator, runner.space.slots
        )
        if self.initial_weights is not None:
            controller.load_state_dict(self.initial_weights)
        try:
            with single_threaded():
                self._search(runner, controller, generator)
        finally:  # also when the search ends by running into the budget
            self.weights = {k: v.detach().clone() for k, v in controller.state_dict().items()}

    def _search(
        self, runner: SearchRunner, controller: Controller, generator: torch.Generator
    ) -> None:
        optimizer = torch.optim.Adam(controller.parameters(), lr=self.learning_rate)
        baseline: float | None = None
        batch: list[tuple[float, list[int], np.ndarray]] = []
        tried: dict[tuple[int, ...], int] = {}  # action prefix -> architectures tried below it
        while not runner.exhausted:
            planned = None
            if self.avoid_repeats:
                planned = self._draw_untried(controller, runner.space, generator, tried)
            episode = self._play(runner, controller, generator, planned)
            if episode is None:
                continue
            actions = tuple(episode[1])
            for end in range(len(actions) + 1):
                tried[actions[:end]] = tried.get(actions[:end], 0) + 1
            batch.append(episode)
            if len(batch) < self.batch_size:
                continue
            rewards = [reward for reward, _, _ in batch]
            if baseline is None:
                baseline = float(np.mean(rewards))
            taken = torch.tensor([played for _, played, _ in batch])
            valid = torch.as_tensor(np.stack([masks for _, _, masks in batch]))
            log_probs, entropies = controller.score(taken, valid)
            advantages = torch.tensor(rewards) - baseline
            loss = -(advantages * log_probs).mean() - self.entropy_weight * entropies.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for reward in rewards:
                baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * reward
            batch = []

    @staticmethod
    def _draw_untried(
        controller: Controller,
        space: SearchSpace,
        generator: torch.Generator,
        tried: dict[tuple[int, ...], int],
    ) -> list[int] | None:
        """The actions of an architecture drawn from the controller without the env, among
        those not yet tried: a decision is allowed only while fewer architectures were tried
        below it than the space holds there. ``None`` once every architecture was tried."""
        prefix: list[Choice] = []
        actions: list[int] = []
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        tokens = torch.tensor([controller.start])
        with torch.no_grad():
            for slot in range(len(space.slots)):
                valid = torch.zeros(1, N_ACTIONS, dtype=torch.bool)
                for action in map(int, np.flatnonzero(space.mask(prefix))):
                    below = [*prefix, space.slots[slot].choices[action]]
                    untried = tried.get((*actions, action), 0) < space.completions(below)
                    valid[0, action] = untried
                if not valid.any():
                    return None
                log_p, state = controller.step(slot, tokens, valid, state)
                action = int(torch.multinomial(log_p[0].exp(), 1, generator=generator))
                actions.append(action)
                prefix.append(space.slots[slot].choices[action])
                tokens = torch.tensor([controller.offsets[slot] + action])
        return actions

    @staticmethod
    def _play(
        runner: SearchRunner,
        controller: Controller,
        generator: torch.Generator,
        planned: list[int] | None = None,
    ) -> tuple[float, list[int], np.ndarray] | None:
        """One episode on ``runner``, sampled without gradients (or the ``planned`` actions):
        (reward, actions, their masks ``(slots, N_ACTIONS)``), or ``None`` if it ended without
        an architecture."""
        _, info = runner.reset()
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        tokens = torch.tensor([controller.start])
        actions: list[int] = []
        n_slots = len(controller.slots)
        masks = np.zeros((n_slots, N_ACTIONS), dtype=bool)
        reward = 0.0
        with torch.no_grad():
            for slot in range(n_slots):
                masks[slot] = np.asarray(info["action_mask"], dtype=bool)
                if planned is None:
                    log_p, state = controller.step(
                        slot, tokens, torch.as_tensor(masks[slot])[None], state
                    )
                    action = int(torch.multinomial(log_p[0].exp(), 1, generator=generator))
                    tokens = torch.tensor([controller.offsets[slot] + action])
                else:
                    action = planned[slot]
                actions.append(action)
                _, step_reward, terminated, truncated, info = runner.step(action)
                reward = float(step_reward)
                if terminated or truncated:
                    break
        if "arch" not in info:
            return None
        return reward, actions, masks
