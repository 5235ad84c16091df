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

Version 1 of the slots (:data:`ENCODER_SLOTS`) adds a 13th decision right after ``items``: the
text ``encoder`` of the item features (``frozen`` MiniLM, or one adapted to the task's training
interactions, :data:`ENCODERS`), open only where the items use text. :data:`FULL_V1` and
:data:`CORE_V1` are :data:`FULL` and :data:`CORE` on those slots. Every space of the version 0
slots answers exactly as it did: an architecture's ``encoder`` is ``frozen`` unless it is
chosen, and a frozen architecture's string, hash and indices in :data:`FULL` and :data:`CORE`
are unchanged.

Every architecture has a canonical string (``Architecture.to_string``, whose docstring gives the
grammar), an integer index in each space that contains it (``SearchSpace.index``), and a stable
hash (``Architecture.hash``). An :class:`Architecture` validates itself on construction: it is
always in the full space, and a value outside it raises ``ValueError`` naming that value and what
is allowed.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
"""The version 0 slots: the decisions of :data:`FULL` and :data:`CORE`, in order."""


def slot_index(slots: Sequence[Slot]) -> dict[str, int]:
    """``{slot name: position}`` of a slot set."""
    return {slot.name: i for i, slot in enumerate(slots)}


def choice_offsets(slots: Sequence[Slot]) -> tuple[int, ...]:
    """Position of slot ``i``'s first choice in a flat numbering of every (slot, choice) pair
    of ``slots``; the last entry is the number of pairs (the one-hot width of a whole
    architecture)."""
    return tuple(int(n) for n in np.cumsum([0, *(len(slot.choices) for slot in slots)]))


SLOT_INDEX: dict[str, int] = slot_index(SLOTS)
CHOICE_OFFSETS: tuple[int, ...] = choice_offsets(SLOTS)
""":func:`choice_offsets` of :data:`SLOTS`: ``CHOICE_OFFSETS[-1]`` (= 52) is the one-hot width
of a version 0 architecture."""

FROZEN = "frozen"
ENCODERS = (FROZEN, "finetuned", "lora")
"""Text encoders of the item features: ``frozen`` all-MiniLM-L6-v2 (every task), or MiniLM
contrastively adapted to the task's training interactions, every weight (``finetuned``) or LoRA
adapters (``lora``); the adapted features ship for the tasks of
:func:`nasenv.data.adapted_encoders` (recipe and one-off cost: ``nasenv/datasets/ADAPTED.json``)."""
ENCODER_SLOTS: tuple[Slot, ...] = (
    *SLOTS[: SLOT_INDEX["items"] + 1],
    Slot(
        "encoder",
        ENCODERS,
        "text encoder of the item features: frozen MiniLM, or adapted to the task (fully "
        "fine-tuned, LoRA); only with text items",
    ),
    *SLOTS[SLOT_INDEX["items"] + 1 :],
)
"""The version 1 slots: :data:`SLOTS` with ``encoder`` after ``items`` (13 decisions)."""

_STRING_KEYS = ("layers", "combine", "dim", "items", "loss", "lr", "reg")
"""The keys of an architecture's canonical string, in their order there (``encoder`` follows
them where it is not ``frozen``)."""


@dataclass(frozen=True)
class Architecture:
    """A complete recommender design: one value for every slot of :data:`SLOTS` (and, in the
    version 1 slots :data:`ENCODER_SLOTS`, its item text ``encoder``).

    Slot order (that of :meth:`decisions` and :meth:`from_decisions`): ``layer1``, ``aggr1``,
    ``layer2``, ``aggr2``, ``layer3``, ``aggr3``, ``combine``, ``dim``, ``items``, (``encoder``,)
    ``loss``, ``lr``, ``reg``. As a sequence of decisions a model of depth ``d < 3`` has
    ``stop`` (with aggregator ``none``) in every layer slot deeper than ``d``; as an
    ``Architecture`` it simply has ``d`` layers.

    Ways to get one, all validated alike:

    * ``Architecture.from_string("layers=lgconv-sage:mean,combine=concat,dim=64,items=id,"
      "loss=bpr,lr=0.02,reg=0.0001")`` (the grammar is in :meth:`to_string`);
    * ``Architecture.from_decisions(values)``, the 12 slot values in the order above (what the
      env's actions choose);
    * ``Architecture(layers=("lgconv", "sage"), aggrs=("none", "mean"), combine="concat",
      dim=64, items="id", loss="bpr", lr=0.02, reg=1e-4)``; or a space's index, ``CORE[42]``.

    Construction refuses, with a ``ValueError`` naming the value and what is allowed, anything
    outside the full space (:data:`FULL`): ``layers`` and ``aggrs`` of different lengths or
    longer than :data:`MAX_LAYERS`; ``stop`` among the layers (a shallower model has fewer
    layers); a value that is no choice of its slot; an aggregator other than ``none`` for a layer
    without that decision (only ``sage`` has one: ``mean``, ``max`` or ``sum``); ``combine``
    other than ``last`` at depth 0. A value of the wrong type (``layers`` not a tuple, ``dim``
    not an ``int``, ``lr`` or ``reg`` not a real number) raises ``TypeError``. An ``int`` ``lr``
    or ``reg`` (``reg=0``) is stored as the equal ``float``, so its string and hash are those of
    the float. Whether an architecture is also in the :data:`CORE` space is a question for that
    space (``arch in CORE``, ``CORE.index(arch)``). An ``encoder`` other than ``frozen`` needs
    text items (``items`` ``text`` or ``id+text``) and places the architecture in the version 1
    spaces only (:data:`FULL_V1`, :data:`CORE_V1`).

    Args:
        layers: message-passing layers in order, from :data:`LAYERS` but ``stop``; ``()`` is
            matrix factorisation (depth 0).
        aggrs: one aggregator per layer: ``mean`` | ``max`` | ``sum`` for ``sage``, ``none`` for
            every other layer.
        combine: ``last`` | ``mean`` | ``sum`` | ``concat`` | ``weighted`` (softmax weights);
            ``last`` at depth 0.
        dim: embedding size: 16 | 32 | 64 | 128.
        items: ``id`` | ``text`` | ``id+text``.
        loss: ``bpr`` | ``bce``.
        lr: Adam learning rate: 0.005 | 0.01 | 0.02 | 0.05.
        reg: L2 coefficient on the batch's input embeddings: 0 | 1e-5 | 1e-4 | 1e-3.
        encoder: the item text encoder, :data:`ENCODERS`; default ``frozen``.
    """

    layers: tuple[str, ...]
    aggrs: tuple[str, ...]
    combine: str
    dim: int
    items: str
    loss: str
    lr: float
    reg: float
    encoder: str = FROZEN

    def __post_init__(self) -> None:
        """Refuse what the full space does not hold (see the class docstring); store an ``int``
        or NumPy ``dim``, ``lr`` or ``reg`` as the equal Python ``int`` or ``float``."""
        layers, aggrs = self.layers, self.aggrs
        for name, value in (("layers", layers), ("aggrs", aggrs)):
            if not isinstance(value, tuple):
                raise TypeError(f"{name} must be a tuple of strings, got {value!r}")
        if len(layers) != len(aggrs):
            raise ValueError(
                f"layers={layers} and aggrs={aggrs} differ in length: give one aggregator per "
                f"layer ({NO_AGGR!r} for layers other than {sorted(AGGREGATED_LAYERS)})"
            )
        if len(layers) > MAX_LAYERS:
            raise ValueError(f"layers={layers} has {len(layers)} layers; at most {MAX_LAYERS}")
        if STOP in layers:
            raise ValueError(
                f"layers={layers} holds {STOP!r}: list only the layers a model has (depth 0: "
                f"layers=()); allowed layers: {list(LAYERS[1:])}"
            )
        if type(self.dim) is not int:
            if not isinstance(self.dim, (int, np.integer)) or isinstance(self.dim, bool):
                raise TypeError(f"dim must be an int, got {self.dim!r}")
            object.__setattr__(self, "dim", int(self.dim))
        for name in ("lr", "reg"):
            value = getattr(self, name)
            if type(value) is not float:
                if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(
                    value, bool
                ):
                    raise TypeError(f"{name} must be a float, got {value!r}")
                object.__setattr__(self, name, float(value))
        if self.encoder == FROZEN:
            FULL.validate_values(self.decisions())
        else:
            FULL_V1.validate_values(self.decisions(ENCODER_SLOTS))

    @classmethod
    def _trusted(cls, fields: dict[str, Any]) -> Architecture:
        """An architecture from already validated, canonically typed fields, without the checks
        of ``__post_init__`` (for :meth:`from_decisions`, whose input is validated)."""
        arch = object.__new__(cls)
        arch.__dict__.update(fields)
        return arch

    def decisions(self, slots: Sequence[Slot] = SLOTS) -> tuple[Choice, ...]:
        """The value chosen for every slot of ``slots`` (default :data:`SLOTS`), in their order:
        ``(layer, aggr)`` for each of the :data:`MAX_LAYERS` layer slots (``("stop", "none")``
        past the depth), then ``combine``, ``dim``, ``items``, (``encoder`` in
        :data:`ENCODER_SLOTS`,) ``loss``, ``lr`` and ``reg``.

        Raises ``ValueError`` for an adapted ``encoder`` and slots without that decision: such an
        architecture has no decisions in a version 0 space (``space.decisions(arch)`` takes the
        space's own slots)."""
        padded = [(layer, aggr) for layer, aggr in zip(self.layers, self.aggrs, strict=True)]
        padded += [(STOP, NO_AGGR)] * (MAX_LAYERS - len(self.layers))
        flat = [value for pair in padded for value in pair]
        head: tuple[Choice, ...] = (*flat, self.combine, self.dim, self.items)
        tail: tuple[Choice, ...] = (self.loss, self.lr, self.reg)
        if len(slots) == len(SLOTS):
            if self.encoder != FROZEN:
                raise ValueError(
                    f"{self.to_string()} has encoder={self.encoder!r}, a decision of the version "
                    f"1 slots only (ENCODER_SLOTS, the spaces 'full-v1' and 'core-v1')"
                )
            return (*head, *tail)
        return (*head, self.encoder, *tail)

    @classmethod
    def from_decisions(
        cls, values: Sequence[Choice], slots: Sequence[Slot] = SLOTS
    ) -> Architecture:
        """Inverse of :meth:`decisions`: one value per slot of ``slots`` (:data:`SLOTS`, 12
        values, or :data:`ENCODER_SLOTS`, 13) in their order, with ``stop`` (and aggregator
        ``none``) in the layer slots past the depth, and only ``stop`` after a ``stop``. Raises
        ``ValueError`` naming the first value that is no choice of its slot or that the full
        space's rules refuse after the values before it."""
        full = _full_space(slots)
        if len(values) != len(full.slots):
            raise ValueError(
                f"expected {len(full.slots)} decisions, got {len(values)}: {list(values)}"
            )
        full.validate_values(values)
        layers, aggrs = [], []
        for i in range(0, 2 * MAX_LAYERS, 2):
            if values[i] == STOP:
                break  # the rules put only stop after a stop
            layers.append(str(values[i]))
            aggrs.append(str(values[i + 1]))
        rest = list(values[2 * MAX_LAYERS :])
        encoder = str(rest.pop(3)) if full.slots is ENCODER_SLOTS else FROZEN
        combine, dim, items, loss, lr, reg = rest
        return cls._trusted(
            {
                "layers": tuple(layers),
                "aggrs": tuple(aggrs),
                "combine": str(combine),
                "dim": int(dim),
                "items": str(items),
                "loss": str(loss),
                "lr": float(lr),
                "reg": float(reg),
                "encoder": encoder,
            }
        )

    @property
    def depth(self) -> int:
        """Number of message-passing layers (0: matrix factorisation)."""
        return len(self.layers)

    def to_string(self) -> str:
        """Canonical, shell-safe text form; its SHA-256 is :attr:`hash`. Grammar::

            layers=STACK,combine=C,dim=D,items=I,loss=L,lr=LR,reg=REG[,encoder=E]

        * the seven keys appear once each, in this order, separated by ``,`` (no spaces);
          ``encoder`` follows them only where it is not ``frozen`` (``E``: ``finetuned`` or
          ``lora``), so the strings and hashes of frozen architectures are those of version 0;
        * ``STACK`` is ``none`` at depth 0 (matrix factorisation), else one token per layer,
          first layer first, joined by ``-``: ``lgconv``, ``gcn``, ``gin`` and ``gat`` alone,
          GraphSAGE with its aggregator: ``sage:mean``, ``sage:max`` or ``sage:sum``. At most
          :data:`MAX_LAYERS` tokens; ``stop`` is never written (fewer tokens instead);
        * ``C``: ``last`` (the only one at depth 0), ``mean``, ``sum``, ``concat``, ``weighted``;
          ``D``: ``16``, ``32``, ``64``, ``128``; ``I``: ``id``, ``text``, ``id+text``;
          ``L``: ``bpr``, ``bce``;
        * ``LR`` and ``REG`` in Python's ``g`` format: ``0.005``, ``0.01``, ``0.02``, ``0.05``;
          ``0``, ``1e-05``, ``0.0001``, ``0.001``.

        The core space (:data:`CORE`) allows only ``lgconv``, ``gcn`` and ``sage:mean`` layers,
        ``combine`` ``last``, ``mean`` or ``concat``, ``dim=64``, ``lr=0.02`` and
        ``reg=0.0001``; ``items`` and ``loss`` are free. Examples::

            layers=none,combine=last,dim=64,items=id,loss=bpr,lr=0.02,reg=0.0001
            layers=lgconv-sage:mean,combine=concat,dim=64,items=id,loss=bpr,lr=0.01,reg=0.0001
            layers=sage:max-gat,combine=weighted,dim=16,items=id+text,loss=bce,lr=0.005,reg=0
        """
        layers = (
            "-".join(
                layer if aggr == NO_AGGR else f"{layer}:{aggr}"
                for layer, aggr in zip(self.layers, self.aggrs, strict=True)
            )
            or "none"
        )
        encoder = "" if self.encoder == FROZEN else f",encoder={self.encoder}"
        return (
            f"layers={layers},combine={self.combine},dim={self.dim},items={self.items},"
            f"loss={self.loss},lr={self.lr:g},reg={self.reg:g}{encoder}"
        )

    @classmethod
    def from_string(cls, text: str) -> Architecture:
        """Parse the grammar of :meth:`to_string`; ``from_string(a.to_string()) == a``.

        Keys may come in any order and numbers in any spelling equal to a choice (``lr=2e-2``),
        and ``encoder=frozen`` may be written, so parsing is a little more lenient than the
        canonical form, but never ambiguous. Raises
        ``ValueError`` naming what is wrong: a part that is not ``key=value``, a missing, unknown
        or repeated key, more than :data:`MAX_LAYERS` layers, an empty layer token, ``stop``
        among the layers, an explicit ``:none`` aggregator, or any value the full space refuses.
        """
        if not isinstance(text, str):
            raise TypeError(f"expected an architecture string, got {type(text).__name__}")
        fields: dict[str, str] = {}
        for part in text.strip().split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(
                    f"cannot parse architecture {text!r}: {part!r} is not a key=value pair"
                )
            if key in fields:
                raise ValueError(
                    f"architecture {text!r} gives {key!r} twice ({key}={fields[key]!r} and "
                    f"{key}={value!r}); each of the keys {list(_STRING_KEYS)} comes once"
                )
            fields[key] = value
        encoder = fields.pop("encoder", FROZEN)
        if sorted(fields) != sorted(_STRING_KEYS):
            missing = [key for key in _STRING_KEYS if key not in fields]
            unknown = [key for key in fields if key not in _STRING_KEYS]
            raise ValueError(
                f"architecture {text!r} must have exactly the keys {list(_STRING_KEYS)}, and "
                f"optionally 'encoder' (missing: {missing}, unknown: {unknown})"
            )
        stack = fields["layers"]
        tokens = [] if stack == "none" else stack.split("-")
        if len(tokens) > MAX_LAYERS:
            raise ValueError(
                f"layers={stack!r} has {len(tokens)} layers; at most {MAX_LAYERS} (depth 0 is "
                f"written layers=none)"
            )
        values: list[Choice] = []
        for depth, token in enumerate(tokens, 1):
            layer, colon, aggr = token.partition(":")
            if layer in ("", STOP, "none") or (colon and aggr == NO_AGGR):
                raise ValueError(
                    f"layer {depth} of layers={stack!r} is {token!r}: write depth 0 as "
                    f"layers=none, else 1 to {MAX_LAYERS} of {_LAYER_TOKENS} joined by '-'"
                )
            values += [layer, aggr if colon else NO_AGGR]
        values += [STOP, NO_AGGR] * (MAX_LAYERS - len(tokens))
        values.append(fields["combine"])
        for key in ("dim", "items", "loss", "lr", "reg"):
            values.append(_parse_choice(SLOTS[SLOT_INDEX[key]], fields[key]))
        if encoder == FROZEN:
            return cls.from_decisions(values)
        values.insert(SLOT_INDEX["items"] + 1, encoder)
        return cls.from_decisions(values, ENCODER_SLOTS)

    @property
    def hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical string."""
        return hashlib.sha256(self.to_string().encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return self.to_string()


_LAYER_TOKENS = [
    *(layer for layer in LAYERS[1:] if layer not in AGGREGATED_LAYERS),
    *(f"{layer}:{aggr}" for layer in sorted(AGGREGATED_LAYERS) for aggr in AGGRS[1:]),
]
"""Every token of a canonical string's layer stack."""


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


_RULED = ("layer", "aggr", "combine", "encoder")
"""Prefixes of the names of the slots with a conditional rule (:func:`_rule_allows`)."""


def _rule_allows(slot: int, value: Choice, prefix: Sequence[Choice], slots: Sequence[Slot]) -> bool:
    """The conditional-validity rules shared by every space. They read only ``prefix[0]``,
    ``prefix[slot - 1]`` and ``prefix[slot - 2]`` (:meth:`SearchSpace.mask_key` relies on it;
    ``encoder`` comes right after ``items``)."""
    name = slots[slot].name
    if name == "encoder":
        return value == FROZEN or prefix[slot - 1] != "id"
    if name.startswith("layer"):
        return slot == 0 or prefix[slot - 2] != STOP or value == STOP
    if name.startswith("aggr"):
        layer = prefix[slot - 1]
        return (value == NO_AGGR) == (layer not in AGGREGATED_LAYERS)
    if name == "combine":
        return prefix[0] != STOP or value == "last"
    return True


class SearchSpace:
    """A subspace of a slot set: per-slot allowed choices plus the shared validity rules.

    Args:
        name: for messages.
        allowed: slot name -> the subset of its choices this space keeps (others: all).
        slots: the decisions, in order: :data:`SLOTS` (version 0, default) or
            :data:`ENCODER_SLOTS` (version 1).

    Attributes:
        slots: the space's decisions; ``slot_index`` and ``choice_offsets`` are
            :func:`slot_index` and :func:`choice_offsets` of them.
    """

    def __init__(
        self,
        name: str,
        allowed: Mapping[str, Sequence[Choice]] | None = None,
        slots: Sequence[Slot] = SLOTS,
    ) -> None:
        self.name = name
        self.slots: tuple[Slot, ...] = _slot_set(slots)
        self.slot_index = slot_index(self.slots)
        self.choice_offsets = choice_offsets(self.slots)
        allowed = dict(allowed or {})
        for key, values in allowed.items():
            if key not in self.slot_index:
                raise ValueError(f"unknown slot {key!r}; slots: {list(self.slot_index)}")
            slot = self.slots[self.slot_index[key]]
            if not set(values) <= set(slot.choices):
                raise ValueError(f"{key}: {values} not all in {list(slot.choices)}")
        self.allowed: tuple[frozenset[Choice], ...] = tuple(
            frozenset(allowed.get(slot.name, slot.choices)) for slot in self.slots
        )
        # Slots from here on have no conditional rule: the space is a product over them.
        ruled = [i for i, slot in enumerate(self.slots) if slot.name.startswith(_RULED)]
        self._free_from = ruled[-1] + 1
        n_slots = len(self.slots)
        self._free_sizes = [len(self._choices(i)) for i in range(self._free_from, n_slots)]
        self._mask_cache: dict[tuple, np.ndarray] = {}
        self._completion_cache: dict[tuple, int] = {}

    @property
    def full(self) -> SearchSpace:
        """The full space of this space's slots (:data:`FULL` or :data:`FULL_V1`): the one whose
        index is ``info["full_index"]``."""
        return _full_space(self.slots)

    def decisions(self, arch: Architecture) -> tuple[Choice, ...]:
        """``arch``'s value for each of this space's slots (``arch.decisions(self.slots)``)."""
        return arch.decisions(self.slots)

    def from_decisions(self, values: Sequence[Choice]) -> Architecture:
        """The architecture of one value per slot of this space (refused, naming the value,
        where this space does not hold it)."""
        self.validate_values(values)
        return Architecture.from_decisions(values, self.slots)

    def _choices(self, slot: int) -> list[Choice]:
        return [c for c in self.slots[slot].choices if c in self.allowed[slot]]

    def slot_choices(self, name: str) -> list[Choice]:
        """The choices of slot ``name`` that this space keeps, in the slot's order (before any
        mask: :meth:`mask` says which of them may follow a prefix)."""
        if name not in self.slot_index:
            raise ValueError(
                f"the {self.name} space has no slot {name!r}; slots: {list(self.slot_index)}"
            )
        return self._choices(self.slot_index[name])

    @staticmethod
    def mask_key(prefix: Sequence[Choice]) -> tuple:
        """What :meth:`mask` depends on: the slot, and the first and two latest decisions (all
        that the validity rules read). Prefixes with one key share one mask."""
        slot = len(prefix)
        return (slot, *(prefix[i] if 0 <= i < slot else None for i in (0, slot - 1, slot - 2)))

    def mask(self, prefix: Sequence[Choice]) -> np.ndarray:
        """Boolean mask over ``self.slots[len(prefix)].choices``: which may follow ``prefix``
        (read-only; shared between calls)."""
        slot = len(prefix)
        if slot >= len(self.slots):
            raise ValueError(f"prefix already has all {len(self.slots)} decisions")
        key = self.mask_key(prefix)
        if key not in self._mask_cache:
            valid = [
                c in self.allowed[slot] and _rule_allows(slot, c, prefix, self.slots)
                for c in self.slots[slot].choices
            ]
            self._mask_cache[key] = np.array(valid)
            self._mask_cache[key].setflags(write=False)
        return self._mask_cache[key]

    def validate_values(self, values: Sequence[Choice]) -> None:
        """Raise ``ValueError`` naming the first decision that is not allowed here: one that is
        no choice of its slot at all, or one that this space (named in the message) refuses after
        the decisions before it. ``values`` may be a prefix (at most one per slot)."""
        if len(values) > len(self.slots):
            raise ValueError(f"{len(values)} decisions, more than the {len(self.slots)} slots")
        for slot, value in enumerate(values):
            choices = self.slots[slot].choices
            if value not in choices or isinstance(value, bool):  # False == 0 == reg 0.0
                raise ValueError(f"{self.slots[slot].name}={value!r} is not one of {list(choices)}")
            valid = self.mask(values[:slot])
            if not valid[choices.index(value)]:
                allowed = [c for c, ok in zip(choices, valid, strict=True) if ok]
                raise ValueError(
                    f"{self.slots[slot].name}={value!r} is not allowed in the {self.name} space "
                    f"after {list(values[:slot])}; allowed: {allowed}"
                )

    @functools.cached_property
    def _structures(self) -> list[tuple[Choice, ...]]:
        """All valid prefixes up to the free slots, in lexicographic choice order."""
        prefixes: list[tuple[Choice, ...]] = [()]
        for slot in range(self._free_from):
            prefixes = [
                (*p, c)
                for p in prefixes
                for c, ok in zip(self.slots[slot].choices, self.mask(p), strict=True)
                if ok
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
        if slot == len(self.slots):
            return 1
        key = self.mask_key(prefix)
        if key not in self._completion_cache:
            self._completion_cache[key] = sum(
                self.completions([*prefix, c])
                for c, ok in zip(self.slots[slot].choices, self.mask(prefix), strict=True)
                if ok
            )
        return self._completion_cache[key]

    def __contains__(self, arch: object) -> bool:
        """Whether the :class:`Architecture` ``arch`` is in this space; anything else (e.g. a
        string, which :meth:`Architecture.from_string` parses) raises ``TypeError``."""
        if not isinstance(arch, Architecture):
            raise TypeError(
                f"the {self.name} space holds Architecture objects, not {type(arch).__name__}; "
                f"parse a string with Architecture.from_string"
            )
        try:
            self.validate_values(arch.decisions(self.slots))
        except ValueError:
            return False
        return True

    def index(self, arch: Architecture) -> int:
        """Position of ``arch`` in this space's canonical order; ``ValueError`` naming this space
        and the first decision it refuses if ``arch`` is outside."""
        if not isinstance(arch, Architecture):
            raise TypeError(f"expected an Architecture, got {type(arch).__name__}")
        values = arch.decisions(self.slots)
        self.validate_values(values)
        rank = self._structure_rank[tuple(values[: self._free_from])]
        for slot, size in zip(
            range(self._free_from, len(self.slots)), self._free_sizes, strict=True
        ):
            rank = rank * size + self._choices(slot).index(values[slot])
        return rank

    def __getitem__(self, index: int) -> Architecture:
        """The architecture at ``index`` (``0 <= index < len(self)``) of the canonical order."""
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"the {self.name} space is indexed by int, not {type(index).__name__}")
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} outside the {self.name} space of {len(self)}")
        free: list[Choice] = []
        for slot, size in reversed(
            list(zip(range(self._free_from, len(self.slots)), self._free_sizes, strict=True))
        ):
            index, position = divmod(index, size)
            free.insert(0, self._choices(slot)[position])
        return Architecture.from_decisions((*self._structures[index], *free), self.slots)

    def __iter__(self) -> Iterator[Architecture]:
        return (self[i] for i in range(len(self)))

    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform draw over this space's architectures."""
        return self[int(rng.integers(len(self)))]

    def id_only(self) -> SearchSpace:
        """This space without text features (``items`` kept at ``"id"``, ``encoder`` at
        ``"frozen"``): the space of a task that has no item texts. Named ``"<name>-id-only"``."""
        allowed = {slot.name: self._choices(i) for i, slot in enumerate(self.slots)}
        allowed["items"] = [c for c in allowed["items"] if c == "id"]
        if not allowed["items"]:
            raise ValueError(f"the {self.name} space has no items='id' choice")
        if "encoder" in allowed:
            allowed["encoder"] = [FROZEN]
        return SearchSpace(f"{self.name}-id-only", allowed, self.slots)

    def with_encoders(self, encoders: Sequence[str]) -> SearchSpace:
        """This space keeping only the text ``encoders`` a task has (``frozen`` always;
        :func:`nasenv.data.adapted_encoders`): the space itself where that drops nothing (every
        version 0 space), else one named ``"<name>-<kept encoders>"``."""
        if "encoder" not in self.slot_index:
            return self
        own = self.slot_choices("encoder")
        kept = [e for e in own if e in encoders or e == FROZEN]
        if kept == own:
            return self
        allowed = {slot.name: self._choices(i) for i, slot in enumerate(self.slots)}
        allowed["encoder"] = kept
        return SearchSpace("-".join([self.name, *map(str, kept)]), allowed, self.slots)

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self):,} architectures)"


def _slot_set(slots: Sequence[Slot]) -> tuple[Slot, ...]:
    """``slots`` as the slot set it equals, :data:`SLOTS` or :data:`ENCODER_SLOTS` (anything
    else is refused)."""
    for known in (SLOTS, ENCODER_SLOTS):
        if slots is known or tuple(slots) == known:
            return known
    raise ValueError("slots must be nasenv.space.SLOTS or nasenv.space.ENCODER_SLOTS")


def _full_space(slots: Sequence[Slot]) -> SearchSpace:
    """The full space of a slot set."""
    return FULL if _slot_set(slots) is SLOTS else FULL_V1


_CORE_ALLOWED: dict[str, Sequence[Choice]] = {
    **{f"layer{d}": (STOP, "lgconv", "gcn", "sage") for d in range(1, MAX_LAYERS + 1)},
    **{f"aggr{d}": (NO_AGGR, "mean") for d in range(1, MAX_LAYERS + 1)},
    "combine": ("last", "mean", "concat"),
    "dim": (64,),
    "lr": (0.02,),
    "reg": (1e-4,),
}
FULL = SearchSpace("full")
CORE = SearchSpace("core", _CORE_ALLOWED)
FULL_V1 = SearchSpace("full-v1", slots=ENCODER_SLOTS)
"""The full space with the ``encoder`` decision (:data:`ENCODER_SLOTS`)."""
CORE_V1 = SearchSpace("core-v1", _CORE_ALLOWED, ENCODER_SLOTS)
"""The core space with the ``encoder`` decision: the 708 frozen architectures of :data:`CORE`
plus each of its text architectures with either adapted encoder, 1,652 in all."""
SPACES: dict[str, SearchSpace] = {
    "full": FULL,
    "core": CORE,
    "full-v1": FULL_V1,
    "core-v1": CORE_V1,
}
