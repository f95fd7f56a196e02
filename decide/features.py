"""Featurization: Personalizer-style JSON features, hashed into a fixed dimension.

Features arrive as Azure Personalizer defines them: ``contextFeatures`` is a list
of JSON objects (a single object is accepted too) and each action has an ``id``
and optional ``features`` of the same shape. They are flattened into named
features, then hashed so that every loop, however open its vocabulary, learns
over vectors of one fixed length.

Flattening rules (``flatten`` shows the result in readable form):

* The top-level keys of a feature object are feature names. A nested object is
  a namespace: the path of its enclosing keys joined by ``.`` names it, and
  ``^`` separates namespace from feature name (``user.profile^lang=en``).
* A string is one-hot on name and value: ``"country": "US"`` -> ``country=US`` 1.
* A number (not a boolean) is a numeric feature with its own value. It must be
  finite: NaN, infinities and integers too large for a double raise
  ``FeatureError``.
* A boolean is one-hot: ``name=true`` or ``name=false``, value 1.
* A list holds numbers and strings: numbers become positional numeric features
  ``name[0]``, ``name[1]``...; strings are multi-hot (``name=value`` each);
  nulls are skipped (positions are kept). Objects, lists and booleans inside a
  list raise ``FeatureError``: their meaning is ambiguous, and a nested object
  says the same thing explicitly.
* Keys starting with ``_`` are ignored at any depth (as in Personalizer), and so
  is ``null``. Repeated features add up.

Hashing is ``zlib.crc32`` of the UTF-8 key, stable across processes (unlike
``hash()``). Reserved keys start with ``_`` (``_bias``, ``_id=<action id>``),
so user features cannot spell them.

* The context vector holds the bias and each context feature at index
  ``crc % dimension``, signed by bit 31 of the crc, so that colliding features
  cancel on average instead of biasing a weight.
* An action's vector holds its bias at the same index, and its terms (the
  one-hot id and its own features) crossed with the context bias and, when
  interactions are on, with every context feature. A cross's index comes from
  its two parents' hashes by vectorized uint64 arithmetic (odd-constant
  multiplies, xor, a final multiply, high bits), never by building strings;
  its sign is the product of the parents' signs.

This module is the definition. ``decide/_featurize.c``, built at install when a
C compiler is there, computes the common case of ``FeatureSpace.action_set`` to
the same bits about eight times as fast, and leaves the rest (every error
included) to the code here; docs/decisions.md ("Two hot paths are compiled") says why.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from decide.errors import Invalid
from decide.limits import MAX_HASH_DIMENSION
from decide.policies.base import ActionSet

try:
    from decide import _featurize
except ImportError:  # installed without a C compiler: featurization runs in Python alone
    _featurize = None
COMPILED = _featurize is not None
"""Whether the compiled common case was built (``decide serve`` says so when it was not)."""

Feature = tuple[str, float]

BIAS_KEY = "_bias"
ID_PREFIX = "_id="

_LEFT = np.uint64(0x9E3779B97F4A7C15)
_RIGHT = np.uint64(0xC2B2AE3D27D4EB4F)
_FINAL = np.uint64(0xBF58476D1CE4E5B9)
_HIGH = np.uint64(32)
_SIGN_BIT = np.uint64(1 << 31)


class FeatureError(Invalid):
    """A request value that cannot be featurized; ``path`` is its JSON path."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(detail, field=path)
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


class _BadValue(Exception):
    """Raised deep in flattening; enclosing levels add their key while it unwinds.

    Building JSON paths only on failure keeps the per-request hot path free of
    string work that is almost never needed.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.trail: list[str | int] = []

    def at(self, root: str) -> FeatureError:
        """The public error, with the full JSON path from ``root``."""
        return FeatureError(_render(root, self.trail), self.detail)


def flatten(features: Any, path: str = "features") -> list[Feature]:
    """Named features of a Personalizer feature list (or object), in input order.

    ``path`` names ``features`` in error messages, e.g. ``contextFeatures``.
    """
    keys: list[str] = []
    values: list[float] = []
    try:
        _flatten_into(features, keys, values)
    except _BadValue as bad:
        raise bad.at(path) from None
    return list(zip(keys, values, strict=True))


def _flatten_into(features: Any, keys: list[str], values: list[float]) -> None:
    """Append the flattened ``features`` to ``keys`` and ``values``."""
    if features is None:
        return
    if isinstance(features, dict):
        _walk_object(features, "", keys, values)
        return
    if not isinstance(features, (list, tuple)):
        raise _BadValue(f"expected a list of JSON objects (or one object), got {_kind(features)}")
    for i, obj in enumerate(features):
        try:
            if isinstance(obj, dict):
                _walk_object(obj, "", keys, values)
            elif obj is not None:
                raise _BadValue(f"expected a JSON object of features, got {_kind(obj)}")
        except _BadValue as bad:
            bad.trail.append(i)
            raise


def _walk_object(obj: dict[str, Any], namespace: str, keys: list[str], values: list[float]) -> None:
    """Flatten one object whose keys live in ``namespace`` ("" at top level)."""
    for key, value in obj.items():
        if value is None or key[:1] == "_":
            continue
        name = f"{namespace}^{key}" if namespace else key
        kind = type(value)
        try:
            if kind is str:
                keys.append(f"{name}={value}")
                values.append(1.0)
            elif kind is bool:
                keys.append(f"{name}={'true' if value else 'false'}")
                values.append(1.0)
            elif kind is float:  # the common number: no conversion, only the check
                values.append(value if math.isfinite(value) else _finite(value))
                keys.append(name)
            elif kind is int or isinstance(value, (int, float)):
                values.append(_finite(value))
                keys.append(name)
            elif isinstance(value, dict):
                _walk_object(value, f"{namespace}.{key}" if namespace else key, keys, values)
            elif isinstance(value, (list, tuple)):
                _walk_list(value, name, keys, values)
            else:
                raise _BadValue(
                    f"unsupported value of type {_kind(value)}; "
                    "use a string, number, boolean, list or object"
                )
        except _BadValue as bad:
            bad.trail.append(key)
            raise


def _walk_list(
    items: list[Any] | tuple[Any, ...], name: str, keys: list[str], values: list[float]
) -> None:
    """Numbers by position, strings multi-hot, nulls skipped, anything else rejected."""
    for i, item in enumerate(items):
        try:
            if isinstance(item, str):
                keys.append(f"{name}={item}")
                values.append(1.0)
            elif isinstance(item, (int, float)) and not isinstance(item, bool):
                values.append(_finite(item))
                keys.append(f"{name}[{i}]")
            elif item is not None:
                raise _BadValue(
                    f"a feature list may hold only numbers and strings, got {_kind(item)}; "
                    "put structured values in a nested object instead"
                )
        except _BadValue as bad:
            bad.trail.append(i)
            raise


def _finite(value: float) -> float:
    """``value`` as a finite float, or a _BadValue saying what to send instead."""
    try:
        number = float(value)
    except OverflowError:
        raise _BadValue("number is too large; send a value that fits in a double") from None
    if not math.isfinite(number):
        raise _BadValue(
            f"number must be finite, got {number}; send a finite value or leave the feature out"
        )
    return number


def _render(root: str, trail: list[str | int]) -> str:
    """JSON path from ``root`` along ``trail`` (innermost key first)."""
    path = root
    for key in reversed(trail):
        if isinstance(key, int):
            path += f"[{key}]"
        elif key.isidentifier():
            path += f".{key}"
        else:
            path += f"[{json.dumps(key)}]"
    return path


def _kind(value: Any) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


@lru_cache(maxsize=2**16)
def feature_hash(key: str) -> int:
    """Stable 32-bit hash of a feature key; cached because keys repeat across requests."""
    return zlib.crc32(key.encode("utf-8"))


def _hashed(keys: list[str], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Hashes (uint64) and signed values (float64) of flattened features."""
    hashes = np.fromiter(map(feature_hash, keys), np.uint64, len(keys))
    signed = np.array(values, dtype=np.float64)
    signed[hashes >= _SIGN_BIT] *= -1.0
    return hashes, signed


@dataclass(frozen=True)
class _Actions:
    """Validated actions and their terms (id one-hot and own features)."""

    ids: tuple[str, ...]
    hashes: np.ndarray
    signed: np.ndarray
    rows: np.ndarray


def _collect_actions(actions: Any, path: str = "actions") -> _Actions:
    """Validate actions and flatten their terms, tagging each term with its row."""
    if not isinstance(actions, (list, tuple)):
        raise FeatureError(path, f"expected a list of actions, got {_kind(actions)}")
    ids: list[str] = []
    seen: set[str] = set()
    keys: list[str] = []
    values: list[float] = []
    counts: list[int] = []
    for row, action in enumerate(actions):
        action_id = _action_id(action, row, seen, path)
        seen.add(action_id)
        ids.append(action_id)
        start = len(keys)
        keys.append(ID_PREFIX + action_id)
        values.append(1.0)
        try:
            _flatten_into(action.get("features"), keys, values)
        except _BadValue as bad:
            raise bad.at(f"{path}[{row}].features") from None
        counts.append(len(keys) - start)
    hashes, signed = _hashed(keys, values)
    rows = np.repeat(np.arange(len(ids), dtype=np.uint64), counts)
    return _Actions(tuple(ids), hashes, signed, rows)


def _action_id(action: Any, row: int, seen: set[str], path: str) -> str:
    """The id of ``action``, which must be a non-empty string not used before."""
    if not isinstance(action, dict):
        raise FeatureError(f"{path}[{row}]", f"expected an action object, got {_kind(action)}")
    action_id = action.get("id")
    if not isinstance(action_id, str) or not action_id:
        raise FeatureError(f"{path}[{row}].id", "every action needs a non-empty string id")
    if action_id in seen:
        raise FeatureError(
            f"{path}[{row}].id", f"duplicate action id {action_id!r}; ids must be unique"
        )
    return action_id


def _cross_index(left: np.ndarray, right: np.ndarray, dimension: int) -> np.ndarray:
    """Index of every (left, right) hash pair, shape (len(left), len(right))."""
    return _pair_index(left[:, None], right[None, :], dimension)


def _pair_index(left: np.ndarray, right: np.ndarray, dimension: int) -> np.ndarray:
    """Index of each (left, right) hash pair, element by element (with broadcasting).

    Each side is spread by its own odd multiplier so that the pair is ordered,
    then the xor is multiplied again: the last multiply breaks the xor's
    linearity, which would otherwise make collisions come in correlated pairs.
    The high 32 bits of the product are the well-mixed ones; multiplying them
    by ``dimension`` and keeping the high half maps them onto ``[0, dimension)``
    without a division.
    """
    mixed = ((left * _LEFT) ^ (right * _RIGHT)) * _FINAL
    if dimension & (dimension - 1) == 0:  # a power of two: the same result in one shift
        return mixed >> np.uint64(64 - dimension.bit_length() + 1)
    return ((mixed >> _HIGH) * np.uint64(dimension)) >> _HIGH


def _action_set(ids: tuple[str, ...], context: np.ndarray, features: np.ndarray, excluded_ids: Iterable[str]) -> ActionSet:
    excluded = set(excluded_ids)
    return ActionSet(ids=ids, context=context, features=features, eligible=np.array([i not in excluded for i in ids], dtype=bool))


@dataclass(frozen=True)
class FeatureSpace:
    """How a loop turns context and actions into vectors of length ``dimension``.

    With ``interactions`` on, each action vector also holds context × action
    terms, which is what lets a single shared linear model prefer different
    actions in different contexts.
    """

    dimension: int = 256
    interactions: bool = True
    compiled: bool = True
    """Use the compiled common case when it is built; False runs the Python definition alone."""

    def __post_init__(self) -> None:
        if (
            not isinstance(self.dimension, int)
            or isinstance(self.dimension, bool)
            or not 1 <= self.dimension <= MAX_HASH_DIMENSION
        ):
            raise ValueError(
                f"dimension must be an integer from 1 to {MAX_HASH_DIMENSION}, got {self.dimension!r}"
            )

    def action_set(
        self,
        context_features: Any,
        actions: Any,
        excluded_ids: Iterable[str] = (),
        *,
        context_path: str = "contextFeatures",
    ) -> ActionSet:
        """Featurize one decision; ``context_path`` names the context in error messages.

        The compiled common case (``decide/_featurize.c``) answers when it can, with
        the same vectors bit for bit; it leaves everything else, errors included,
        to ``_action_set_in_python``.
        """
        if self.compiled and _featurize is not None and isinstance(actions, (list, tuple)):
            context = np.zeros(self.dimension)
            features = np.zeros((len(actions), self.dimension))
            ids = _featurize.action_set(context_features, actions, self.dimension, self.interactions, context, features)
            if ids is not None:
                return _action_set(ids, context, features, excluded_ids)
        return self._action_set_in_python(context_features, actions, excluded_ids, context_path)

    def _action_set_in_python(self, context_features: Any, actions: Any, excluded_ids: Iterable[str], context_path: str) -> ActionSet:
        """``action_set`` in Python: the definition of featurization, and the only path for invalid input."""
        keys = [BIAS_KEY]
        values = [1.0]
        try:
            _flatten_into(context_features, keys, values)
        except _BadValue as bad:
            raise bad.at(context_path) from None
        context_hashes, context_signed = _hashed(keys, values)
        candidates = _collect_actions(actions)
        return _action_set(
            candidates.ids,
            self._context_vector(context_hashes, context_signed),
            self._action_matrix(candidates, context_hashes, context_signed),
            excluded_ids,
        )

    def chosen_vectors(self, decisions: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[np.ndarray, np.ndarray]:
        """Context vectors and chosen-action vectors of many logged decisions, rows (n, dimension) each.

        Row i equals ``action_set(context_i, [action_i])``'s context and
        features[0], bit for bit, but the arrays are built in one vectorized pass
        rather than a dozen small ones per decision: this is what learning from a
        batch of joined examples spends its featurizing time on. The decisions
        were validated when they were made, so nothing is validated again.
        """
        d = self.dimension
        context_keys, context_values, context_counts = [], [], []
        action_keys, action_values, action_counts = [], [], []
        for context, action in decisions:
            start = len(context_keys)
            context_keys.append(BIAS_KEY)
            context_values.append(1.0)
            _flatten_into(context, context_keys, context_values)
            context_counts.append(len(context_keys) - start)
            start = len(action_keys)
            action_keys.append(ID_PREFIX + action["id"])
            action_values.append(1.0)
            _flatten_into(action.get("features"), action_keys, action_values)
            action_counts.append(len(action_keys) - start)
        context_hashes, context_signed = _hashed(context_keys, context_values)
        action_hashes, action_signed = _hashed(action_keys, action_values)
        n, rows = len(decisions), np.arange(len(decisions))
        contexts_per, actions_per = np.array(context_counts, dtype=np.intp), np.array(action_counts, dtype=np.intp)
        context_start, action_start = np.cumsum(contexts_per) - contexts_per, np.cumsum(actions_per) - actions_per
        context_index = np.repeat(rows, contexts_per) * d + (context_hashes % np.uint64(d)).astype(np.intp)
        contexts = np.bincount(context_index, weights=context_signed, minlength=n * d).astype(np.float64, copy=False).reshape(n, d)
        # Every (context term, action term) pair of each decision, context-major as in _action_matrix.
        pairs_per = (contexts_per if self.interactions else np.ones(n, dtype=np.intp)) * actions_per
        pair_row = np.repeat(rows, pairs_per)
        within = np.arange(pairs_per.sum()) - np.repeat(np.cumsum(pairs_per) - pairs_per, pairs_per)
        left = context_start[pair_row] + within // actions_per[pair_row]
        right = action_start[pair_row] + within % actions_per[pair_row]
        index = _pair_index(context_hashes[left], action_hashes[right], d).astype(np.intp) + pair_row * d
        weights = context_signed[left] * action_signed[right]
        features = np.bincount(index, weights=weights, minlength=n * d).astype(np.float64, copy=False).reshape(n, d)
        features[rows, (context_hashes[context_start] % np.uint64(d)).astype(np.intp)] += context_signed[context_start]
        return contexts, features

    def _context_vector(self, hashes: np.ndarray, signed: np.ndarray) -> np.ndarray:
        """Bias and context features at ``crc % dimension``."""
        index = (hashes % np.uint64(self.dimension)).astype(np.intp)
        return np.bincount(index, weights=signed, minlength=self.dimension)

    def _action_matrix(
        self, candidates: _Actions, context_hashes: np.ndarray, context_signed: np.ndarray
    ) -> np.ndarray:
        """Rows of bias plus action terms crossed with the context bias (and features).

        ``context_hashes[0]`` is the bias, so crossing with it alone places each
        term once; crossing with all of it adds the interactions.
        """
        d = self.dimension
        k = len(candidates.ids)
        used = len(context_hashes) if self.interactions else 1
        index = _cross_index(context_hashes[:used], candidates.hashes, d)
        index += candidates.rows * np.uint64(d)
        with np.errstate(over="ignore"):  # an overflow is refused by the policy, which checks the scores
            weight = context_signed[:used, None] * candidates.signed[None, :]
        flat = np.bincount(index.ravel().astype(np.intp), weights=weight.ravel(), minlength=k * d)
        matrix = flat.astype(np.float64, copy=False).reshape(k, d)
        matrix[:, context_hashes[0] % np.uint64(d)] += context_signed[0]
        return matrix
