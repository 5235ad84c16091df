"""The search space: the single source of truth for architectures.

An architecture is a sequence of decisions, one per :class:`Slot`, made in the order of
:data:`SLOTS`. Some decisions constrain later ones (after ``stop`` every deeper layer is ``stop``;
only GraphSAGE has an aggregator to choose; a model without layers has nothing to combine), which
:meth:`SearchSpace.mask` expresses as a boolean mask over the current slot's choices.

Two spaces share these slots and rules:

* :data:`FULL` - every choice of every slot;
* :data:`CORE` - the tabulated subspace: LightGCN, GCN and mean-GraphSAGE layers, fixed
  embedding size, learning rate and regularisation; 708 distinct architectures. (GraphSAGE-max
  is left to the full space: its training costs twice as much and it never ranked first in a
  measured sample, see ``benchmarks/RESULTS.md``.)

Every architecture has a canonical string (``Architecture.to_string``), an integer index in each
space that contains it (``SearchSpace.index``), and a stable hash (``Architecture.hash``).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Choice = str | int | float

MAX_LAYERS = 3
STOP = "stop"
NO_AGGR = "none"
LAYERS = (STOP, "lgconv", "gcn", "sage", "gin", "gat")
AGGREGATED_LAYERS = frozenset({"sage"})  # layers whose neighbourhood aggregator is a decision
AGGRS = (NO_AGGR, "mean", "max", "sum")
COMBINES = ("last", "mean", "sum", "concat", "weighted")


@dataclass(frozen=True)
class Slot:
    """One decision: its name, its choices in a fixed order, and what it means."""

    name: str
    choices: tuple[Choice, ...]
    doc: str


SLOTS: tuple[Slot, ...] = (
    *(
        slot
        for depth in range(1, MAX_LAYERS + 1)
        for slot in (
            Slot(
                f"layer{depth}",
                LAYERS,
                f"message-passing layer {depth}, or stop (depth {depth - 1})",
            ),
            Slot(f"aggr{depth}", AGGRS, f"neighbourhood aggregator of layer {depth} (GraphSAGE)"),
        )
    ),
    Slot("combine", COMBINES, "how the input and every layer's output form the final embedding"),
    Slot("dim", (16, 32, 64, 128), "embedding size of users and items"),
    Slot(
        "items",
        ("id", "text", "id+text"),
        "item input: ID embedding, projected MiniLM text features, or their sum",
    ),
    Slot("loss", ("bpr", "bce"), "pairwise BPR or pointwise binary cross-entropy, 1 negative"),
    Slot("lr", (0.005, 0.01, 0.02, 0.05), "Adam learning rate (for batches of 16,384)"),
    Slot("reg", (0.0, 1e-5, 1e-4, 1e-3), "L2 penalty on the batch's input embeddings"),
)
SLOT_INDEX: dict[str, int] = {slot.name: i for i, slot in enumerate(SLOTS)}
CHOICE_OFFSETS: tuple[int, ...] = tuple(
    int(n) for n in np.cumsum([0, *(len(slot.choices) for slot in SLOTS)])
)
"""Position of slot ``i``'s first choice in a flat numbering of every (slot, choice) pair;
``CHOICE_OFFSETS[-1]`` is the number of pairs (the one-hot width of a whole architecture)."""


@dataclass(frozen=True)
class Architecture:
    """A complete recommender design.

    Args:
        layers: message-passing layers in order (empty: matrix factorisation).
        aggrs: one aggregator per layer; ``"none"`` for layers without that decision.
        combine: ``last`` | ``mean`` | ``sum`` | ``concat`` | ``weighted`` (softmax weights).
        dim: embedding size.
        items: ``id`` | ``text`` | ``id+text``.
        loss: ``bpr`` | ``bce``.
        lr: Adam learning rate.
        reg: L2 coefficient on the batch's input embeddings.
    """

    layers: tuple[str, ...]
    aggrs: tuple[str, ...]
    combine: str
    dim: int
    items: str
    loss: str
    lr: float
    reg: float

    def decisions(self) -> tuple[Choice, ...]:
        """The value chosen for every slot, in slot order."""
        padded = [(layer, aggr) for layer, aggr in zip(self.layers, self.aggrs)]
        padded += [(STOP, NO_AGGR)] * (MAX_LAYERS - len(self.layers))
        flat = [value for pair in padded for value in pair]
        return (*flat, self.combine, self.dim, self.items, self.loss, self.lr, self.reg)

    @classmethod
    def from_decisions(cls, values: Sequence[Choice]) -> Architecture:
        """Inverse of :meth:`decisions`; raises ``ValueError`` for an invalid sequence."""
        if len(values) != len(SLOTS):
            raise ValueError(f"expected {len(SLOTS)} decisions, got {len(values)}")
        FULL.validate_values(values)
        pairs = [(values[2 * i], values[2 * i + 1]) for i in range(MAX_LAYERS)]
        used = [pair for pair in pairs if pair[0] != STOP]
        combine, dim, items, loss, lr, reg = values[2 * MAX_LAYERS :]
        return cls(
            layers=tuple(str(layer) for layer, _ in used),
            aggrs=tuple(str(aggr) for _, aggr in used),
            combine=str(combine),
            dim=int(dim),
            items=str(items),
            loss=str(loss),
            lr=float(lr),
            reg=float(reg),
        )

    @property
    def depth(self) -> int:
        return len(self.layers)

    def to_string(self) -> str:
        """Canonical, shell-safe text form, e.g.
        ``layers=lgconv-sage:mean,combine=concat,dim=64,items=id,loss=bpr,lr=0.01,reg=0.0001``."""
        layers = (
            "-".join(
                layer if aggr == NO_AGGR else f"{layer}:{aggr}"
                for layer, aggr in zip(self.layers, self.aggrs)
            )
            or "none"
        )
        return (
            f"layers={layers},combine={self.combine},dim={self.dim},items={self.items},"
            f"loss={self.loss},lr={self.lr:g},reg={self.reg:g}"
        )

    @classmethod
    def from_string(cls, text: str) -> Architecture:
        """Parse :meth:`to_string` output; raises ``ValueError`` naming what is wrong."""
        try:
            fields = dict(part.split("=", 1) for part in text.strip().split(","))
        except ValueError:
            raise ValueError(
                f"cannot parse architecture {text!r}: expected key=value pairs"
            ) from None
        expected = ["layers", "combine", "dim", "items", "loss", "lr", "reg"]
        if sorted(fields) != sorted(expected):
            raise ValueError(f"architecture {text!r} must have exactly the keys {expected}")
        layers, aggrs = [], []
        if fields["layers"] != "none":
            for token in fields["layers"].split("-"):
                layer, _, aggr = token.partition(":")
                layers.append(layer)
                aggrs.append(aggr or NO_AGGR)
        values: list[Choice] = []
        for i in range(MAX_LAYERS):
            values += [layers[i], aggrs[i]] if i < len(layers) else [STOP, NO_AGGR]
        values.append(fields["combine"])
        for key in ("dim", "items", "loss", "lr", "reg"):
            values.append(_parse_choice(SLOTS[SLOT_INDEX[key]], fields[key]))
        return cls.from_decisions(values)

    @property
    def hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical string."""
        return hashlib.sha256(self.to_string().encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return self.to_string()


def _parse_choice(slot: Slot, token: str) -> Choice:
    for choice in slot.choices:
        if str(choice) == token or (
            isinstance(choice, float) and _is_float(token) and math.isclose(choice, float(token))
        ):
            return choice
    raise ValueError(f"{slot.name}={token!r} is not one of {list(slot.choices)}")


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _rule_allows(slot: int, value: Choice, prefix: Sequence[Choice]) -> bool:
    """The conditional-validity rules shared by every space. They read only ``prefix[0]``,
    ``prefix[slot - 1]`` and ``prefix[slot - 2]`` (:meth:`SearchSpace.mask_key` relies on it)."""
    name = SLOTS[slot].name
    if name.startswith("layer"):
        return slot == 0 or prefix[slot - 2] != STOP or value == STOP
    if name.startswith("aggr"):
        layer = prefix[slot - 1]
        return (value == NO_AGGR) == (layer not in AGGREGATED_LAYERS)
    if name == "combine":
        return prefix[0] != STOP or value == "last"
    return True


class SearchSpace:
    """A subspace of the slots: per-slot allowed choices plus the shared validity rules.

    Args:
        name: for messages.
        allowed: slot name -> the subset of its choices this space keeps (others: all).
    """

    def __init__(self, name: str, allowed: Mapping[str, Sequence[Choice]] | None = None) -> None:
        self.name = name
        allowed = dict(allowed or {})
        for key, values in allowed.items():
            slot = SLOTS[SLOT_INDEX[key]]
            if not set(values) <= set(slot.choices):
                raise ValueError(f"{key}: {values} not all in {list(slot.choices)}")
        self.allowed: tuple[frozenset[Choice], ...] = tuple(
            frozenset(allowed.get(slot.name, slot.choices)) for slot in SLOTS
        )
        # Slots from here on have no conditional rule: the space is a product over them.
        self._free_from = SLOT_INDEX["dim"]
        self._free_sizes = [len(self._choices(i)) for i in range(self._free_from, len(SLOTS))]
        self._mask_cache: dict[tuple, np.ndarray] = {}
        self._completion_cache: dict[tuple, int] = {}

    def _choices(self, slot: int) -> list[Choice]:
        return [c for c in SLOTS[slot].choices if c in self.allowed[slot]]

    @staticmethod
    def mask_key(prefix: Sequence[Choice]) -> tuple:
        """What :meth:`mask` depends on: the slot, and the first and two latest decisions (all
        that the validity rules read). Prefixes with one key share one mask."""
        slot = len(prefix)
        return (slot, *(prefix[i] if 0 <= i < slot else None for i in (0, slot - 1, slot - 2)))

    def mask(self, prefix: Sequence[Choice]) -> np.ndarray:
        """Boolean mask over ``SLOTS[len(prefix)].choices``: which may follow ``prefix``
        (read-only; shared between calls)."""
        slot = len(prefix)
        if slot >= len(SLOTS):
            raise ValueError(f"prefix already has all {len(SLOTS)} decisions")
        key = self.mask_key(prefix)
        if key not in self._mask_cache:
            valid = [
                c in self.allowed[slot] and _rule_allows(slot, c, prefix)
                for c in SLOTS[slot].choices
            ]
            self._mask_cache[key] = np.array(valid)
            self._mask_cache[key].setflags(write=False)
        return self._mask_cache[key]

    def validate_values(self, values: Sequence[Choice]) -> None:
        """Raise ``ValueError`` naming the first decision that is not allowed here."""
        for slot, value in enumerate(values):
            choices = SLOTS[slot].choices
            if value not in choices:
                raise ValueError(f"{SLOTS[slot].name}={value!r} is not one of {list(choices)}")
            valid = self.mask(values[:slot])
            if not valid[choices.index(value)]:
                allowed = [c for c, ok in zip(choices, valid) if ok]
                raise ValueError(
                    f"{SLOTS[slot].name}={value!r} is not allowed in the {self.name} space after "
                    f"{list(values[:slot])}; allowed: {allowed}"
                )

    @functools.cached_property
    def _structures(self) -> list[tuple[Choice, ...]]:
        """All valid prefixes up to the free slots, in lexicographic choice order."""
        prefixes: list[tuple[Choice, ...]] = [()]
        for slot in range(self._free_from):
            prefixes = [
                (*p, c) for p in prefixes for c, ok in zip(SLOTS[slot].choices, self.mask(p)) if ok
            ]
        return prefixes

    @functools.cached_property
    def _structure_rank(self) -> dict[tuple[Choice, ...], int]:
        return {prefix: i for i, prefix in enumerate(self._structures)}

    def __len__(self) -> int:
        return len(self._structures) * math.prod(self._free_sizes)

    def completions(self, prefix: Sequence[Choice]) -> int:
        """How many architectures of this space start with the valid decisions ``prefix``
        (``completions([]) == len(space)``). Like a mask, the count depends only on
        :meth:`mask_key`, and is cached by it."""
        slot = len(prefix)
        if slot == len(SLOTS):
            return 1
        key = self.mask_key(prefix)
        if key not in self._completion_cache:
            self._completion_cache[key] = sum(
                self.completions([*prefix, c])
                for c, ok in zip(SLOTS[slot].choices, self.mask(prefix))
                if ok
            )
        return self._completion_cache[key]

    def __contains__(self, arch: object) -> bool:
        if not isinstance(arch, Architecture):
            return False
        try:
            self.validate_values(arch.decisions())
        except ValueError:
            return False
        return True

    def index(self, arch: Architecture) -> int:
        """Position of ``arch`` in this space's canonical order; ``ValueError`` if outside."""
        values = arch.decisions()
        self.validate_values(values)
        rank = self._structure_rank[tuple(values[: self._free_from])]
        for slot, size in zip(range(self._free_from, len(SLOTS)), self._free_sizes):
            rank = rank * size + self._choices(slot).index(values[slot])
        return rank

    def __getitem__(self, index: int) -> Architecture:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside the {self.name} space of {len(self)}")
        free: list[Choice] = []
        for slot, size in reversed(list(zip(range(self._free_from, len(SLOTS)), self._free_sizes))):
            index, position = divmod(index, size)
            free.insert(0, self._choices(slot)[position])
        return Architecture.from_decisions((*self._structures[index], *free))

    def __iter__(self) -> Iterator[Architecture]:
        return (self[i] for i in range(len(self)))

    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform draw over this space's architectures."""
        return self[int(rng.integers(len(self)))]

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self):,} architectures)"


FULL = SearchSpace("full")
CORE = SearchSpace(
    "core",
    {
        **{f"layer{d}": (STOP, "lgconv", "gcn", "sage") for d in range(1, MAX_LAYERS + 1)},
        **{f"aggr{d}": (NO_AGGR, "mean") for d in range(1, MAX_LAYERS + 1)},
        "combine": ("last", "mean", "concat"),
        "dim": (64,),
        "lr": (0.02,),
        "reg": (1e-4,),
    },
)
SPACES: dict[str, SearchSpace] = {"full": FULL, "core": CORE}
