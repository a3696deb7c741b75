"""A data-only reader for pickled numpy arrays, lists and dicts (no code is ever run).

The official CIFAR-10 "python version" ships its batches as pickles. Loading a pickle
with the standard library can run arbitrary code, so this module interprets the pickle
opcodes itself and understands only plain data (dicts, lists, tuples, strings, bytes,
numbers) plus three named constructors that it re-implements as data: numpy's array
``_reconstruct``, ``numpy.dtype`` and ``_codecs.encode`` (how Python 3 writes bytes in
protocol 2). Any other global, or an object array, is refused with :class:`DataError`.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from advparams.errors import DataError

_ARRAY_RECONSTRUCT = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}
_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
_ALLOWED = (
    _ARRAY_RECONSTRUCT
    | _FROMBUFFER
    | {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _Global:
    def __init__(self, module: str, name: str) -> None:
        self.key = (module, name)


class _ArrayStub:
    """An array under construction: filled in by BUILD."""

    value: np.ndarray | None = None


class _DtypeStub:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.dtype = np.dtype(spec)


class _Mark:
    pass


_MARK = _Mark()


MAX_DEPTH = 32  # nesting of containers
MAX_NODES = 1_000_000  # values visited while finishing, shared references counted each time
MAX_STACK = 1_000_000  # values on the pickle machine's stack and in its memo


class _Finisher:
    """Replaces construction stubs by their values. Shared references are finished once and
    shared again (so a small pickle of references cannot grow without end); a container
    that holds itself, nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_NODES`
    visits are refused."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.done: dict[int, Any] = {}
        self.active: set[int] = set()
        self.nodes = 0

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise DataError(f"{self.what} holds more than {MAX_NODES} values")
        if isinstance(obj, _ArrayStub):
            if obj.value is None:
                raise DataError(f"{self.what} holds an array without data")
            return obj.value
        if isinstance(obj, _DtypeStub):
            return obj.dtype
        if not isinstance(obj, (dict, list, tuple)):
            return obj
        ident = id(obj)
        if ident in self.done:
            return self.done[ident]
        if ident in self.active:
            raise DataError(f"{self.what} holds a container that contains itself")
        if depth >= MAX_DEPTH:
            raise DataError(f"{self.what} is nested more than {MAX_DEPTH} levels deep")
        self.active.add(ident)
        out: Any
        if isinstance(obj, dict):
            out = {self(k, depth + 1): self(v, depth + 1) for k, v in obj.items()}
        elif isinstance(obj, list):
            out = [self(v, depth + 1) for v in obj]
        else:
            out = tuple(self(v, depth + 1) for v in obj)
        self.active.discard(ident)
        self.done[ident] = out
        return out


def loads_data(data: bytes, *, what: str = "pickle") -> Any:
    """Decodes a pickle that holds only plain data and numpy arrays.

    Python-2 ``str`` values come back as ``bytes`` (what the standard library gives with
    ``encoding="bytes"``).

    Raises:
        DataError: the pickle is truncated, malformed, or holds anything but data.
    """
    try:
        return _Finisher(what)(_Reader(data, what).run())
    except DataError:
        raise
    except RecursionError:
        raise DataError(f"{what} is nested too deeply") from None
    except (
        IndexError,
        struct.error,
        ValueError,
        TypeError,
        KeyError,
        UnicodeDecodeError,
        AttributeError,
        OverflowError,
        MemoryError,
    ) as exc:
        raise DataError(f"{what} is truncated or malformed ({type(exc).__name__})") from None


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DataError(f"{self.what} is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def line(self) -> bytes:
        end = self.data.index(b"\n", self.pos)
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def pop_mark(self) -> list[Any]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1 :]
                del self.stack[i:]
                return items
        raise DataError(f"{self.what} is malformed (no mark)")

    def u(self, fmt: str, n: int) -> int:
        return int(struct.unpack(fmt, self.take(n))[0])

    def reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise DataError(f"{self.what} calls something that is not allowed")
        if func.key in _ARRAY_RECONSTRUCT:
            return _ArrayStub()
        if func.key in _FROMBUFFER:  # protocol 5: (buffer, dtype, shape, order)
            buf, dtype, shape, order = args
            dtype = dtype.dtype if isinstance(dtype, _DtypeStub) else dtype
            if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(buf, (bytes, bytearray)):
                raise DataError(f"{self.what} holds an array that is not plain data")
            stub = _ArrayStub()
            stub.value = np.frombuffer(bytes(buf), dtype=dtype).reshape(tuple(shape), order=order)
            return stub
        if func.key == ("numpy", "dtype"):
            return _DtypeStub(str(args[0]))
        if func.key == ("_codecs", "encode"):
            text, encoding = args[0], args[1] if len(args) > 1 else "utf-8"
            if encoding not in ("latin1", "latin-1"):
                raise DataError(f"{self.what} uses an unsupported encoding {encoding!r}")
            return str(text).encode("latin1")
        raise DataError(f"{self.what} calls {'.'.join(func.key)}, which is not allowed")

    def build(self, obj: Any, state: Any) -> None:
        if isinstance(obj, _DtypeStub):
            # state = (version, byteorder, subarray, names, fields, elsize, alignment, flags)
            order = state[1] if isinstance(state, tuple) and len(state) > 1 else "|"
            if state[2] is not None or state[3] is not None:
                raise DataError(f"{self.what} holds a structured dtype, which is not supported")
            if order in ("<", ">"):
                obj.dtype = np.dtype(obj.spec).newbyteorder(order)  # type: ignore[arg-type]
            return
        if isinstance(obj, _ArrayStub):
            # state = (version, shape, dtype, is_fortran, raw_bytes)
            _, shape, dtype, fortran, raw = state
            dtype = dtype.dtype if isinstance(dtype, _DtypeStub) else dtype
            if not isinstance(dtype, np.dtype) or dtype.hasobject:
                raise DataError(f"{self.what} holds an object array, which is not allowed")
            if isinstance(raw, str):
                raw = raw.encode("latin1")
            if not isinstance(raw, (bytes, bytearray)):
                raise DataError(f"{self.what} holds an array without raw data")
            arr = np.frombuffer(bytes(raw), dtype=dtype)
            obj.value = arr.reshape(tuple(shape), order="F" if fortran else "C")
            return
        raise DataError(f"{self.what} sets the state of an object, which is not allowed")

    def run(self) -> Any:  # noqa: C901  (one branch per opcode is the clearest form)
        st = self.stack
        while True:
            if len(st) > MAX_STACK or len(self.memo) > MAX_STACK:
                raise DataError(f"{self.what} holds more than {MAX_STACK} values")
            op = self.take(1)
            if op == b"\x80":  # PROTO
                self.take(1)
            elif op == b"\x95":  # FRAME
                self.take(8)
            elif op == b".":  # STOP
                if len(st) != 1:
                    raise DataError(f"{self.what} is malformed (stack at STOP)")
                return st.pop()
            elif op == b"(":
                st.append(_MARK)
            elif op == b"}":
                st.append({})
            elif op == b"]":
                st.append([])
            elif op == b")":
                st.append(())
            elif op == b"d":
                items = self.pop_mark()
                st.append(dict(zip(items[::2], items[1::2], strict=True)))
            elif op == b"l":
                st.append(self.pop_mark())
            elif op == b"t":
                st.append(tuple(self.pop_mark()))
            elif op in (b"\x85", b"\x86", b"\x87"):
                n = op[0] - 0x84
                items = st[-n:]
                del st[-n:]
                st.append(tuple(items))
            elif op == b"a":
                v = st.pop()
                st[-1].append(v)
            elif op == b"e":
                items = self.pop_mark()
                st[-1].extend(items)
            elif op == b"s":
                v = st.pop()
                k = st.pop()
                st[-1][k] = v
            elif op == b"u":
                items = self.pop_mark()
                st[-1].update(zip(items[::2], items[1::2], strict=True))
            elif op == b"p":
                self.memo[int(self.line())] = st[-1]
            elif op == b"q":
                self.memo[self.take(1)[0]] = st[-1]
            elif op == b"r":
                self.memo[self.u("<I", 4)] = st[-1]
            elif op == b"\x94":  # MEMOIZE
                self.memo[len(self.memo)] = st[-1]
            elif op == b"g":
                st.append(self.memo[int(self.line())])
            elif op == b"h":
                st.append(self.memo[self.take(1)[0]])
            elif op == b"j":
                st.append(self.memo[self.u("<I", 4)])
            elif op == b"N":
                st.append(None)
            elif op == b"\x88":
                st.append(True)
            elif op == b"\x89":
                st.append(False)
            elif op == b"I":
                s = self.line()
                st.append({b"00": False, b"01": True}.get(s) if s in (b"00", b"01") else int(s))
            elif op == b"J":
                st.append(self.u("<i", 4))
            elif op == b"K":
                st.append(self.take(1)[0])
            elif op == b"M":
                st.append(self.u("<H", 2))
            elif op == b"L":
                st.append(int(self.line().rstrip(b"L")))
            elif op == b"\x8a":
                st.append(int.from_bytes(self.take(self.take(1)[0]), "little", signed=True))
            elif op == b"\x8b":
                st.append(int.from_bytes(self.take(self.u("<i", 4)), "little", signed=True))
            elif op == b"G":
                st.append(struct.unpack(">d", self.take(8))[0])
            elif op == b"F":
                st.append(float(self.line()))
            elif op == b"T":
                st.append(self.take(self.u("<i", 4)))
            elif op == b"U":
                st.append(self.take(self.take(1)[0]))
            elif op == b"S":
                raw = self.line().strip()
                if len(raw) < 2 or raw[:1] not in (b"'", b'"') or raw[-1:] != raw[:1]:
                    raise DataError(f"{self.what} is malformed (STRING)")
                st.append(raw[1:-1].decode("unicode_escape").encode("latin1"))
            elif op == b"X":
                st.append(self.take(self.u("<I", 4)).decode("utf-8", "surrogatepass"))
            elif op == b"\x8c":
                st.append(self.take(self.take(1)[0]).decode("utf-8", "surrogatepass"))
            elif op == b"\x8d":
                st.append(self.take(self.u("<Q", 8)).decode("utf-8", "surrogatepass"))
            elif op == b"V":
                st.append(self.line().decode("raw-unicode-escape"))
            elif op == b"B":
                st.append(self.take(self.u("<I", 4)))
            elif op == b"C":
                st.append(self.take(self.take(1)[0]))
            elif op == b"\x8e":
                st.append(self.take(self.u("<Q", 8)))
            elif op == b"\x96":
                st.append(bytearray(self.take(self.u("<Q", 8))))
            elif op in (b"c", b"\x93"):
                if op == b"c":
                    module, name = self.line().decode("ascii"), self.line().decode("ascii")
                else:
                    name = st.pop()
                    module = st.pop()
                if (module, name) not in _ALLOWED:
                    raise DataError(f"{self.what} refers to {module}.{name}, which is not allowed")
                st.append(_Global(module, name))
            elif op == b"R":
                args = st.pop()
                func = st.pop()
                st.append(self.reduce(func, args))
            elif op == b"b":
                state = st.pop()
                self.build(st[-1], state)
            elif op == b"0":
                st.pop()
            elif op == b"1":
                self.pop_mark()
            elif op == b"2":
                st.append(st[-1])
            else:
                raise DataError(f"{self.what} uses pickle opcode {op!r}, which is not allowed")
