"""CRC-64/GO-ISO (Go's ``hash/crc64`` with the ISO table), as tar-split stores it.

Reflected polynomial 0xD800000000000000, init and xorout all ones.

``Crc64`` computes it with anycrc (C, ~10 GB/s) when that is installed, as
pallet-storage requires; the pure-Python code below is the fallback for a
platform without an anycrc wheel, and the reference the tests hold anycrc to.
Every file's payload of every layer goes through this CRC for tar-split: at
the fallback's ~20 MB/s it was most of the time of applying a layer.

The fallback is pure Python, but not byte-by-byte: a chunk is bit-reversed per byte with
``bytes.translate`` (C speed), read as one big integer (a GF(2) polynomial
with the first bit highest), and reduced modulo P(x) = x^64 + x^4 + x^3 + x + 1
by halving folds (``A·x^k + B ≡ A·(x^k mod P) + B``), each a few dozen shifts
and XORs on big integers. That is about 20 times faster than a table loop.
"""

from __future__ import annotations

from functools import lru_cache

_POLY_LOW = 0x1B  # x^4 + x^3 + x + 1: P(x) without its x^64 term
_MASK64 = (1 << 64) - 1
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _clmul(a: int, b: int) -> int:
    """Carry-less product of ``a`` and the small ``b`` (XOR of shifted copies of ``a``)."""
    out = 0
    shift = 0
    while b:
        if b & 1:
            out ^= a << shift
        b >>= 1
        shift += 1
    return out


def _mod_small(v: int) -> int:
    """``v mod P`` for any ``v``, folding 64 bits at a time (fast when ``v`` is under ~256 bits)."""
    while v >> 64:
        high = v >> 64
        v = (v & _MASK64) ^ high ^ (high << 1) ^ (high << 3) ^ (high << 4)
    return v


@lru_cache(maxsize=256)
def _xpow_mod(k: int) -> int:
    """``x^k mod P`` by square-and-multiply (a pure function, memoised: chunk sizes repeat)."""
    result, base = 1, 2  # the polynomials 1 and x
    while k:
        if k & 1:
            result = _mod_small(_clmul(result, base))
        base = _mod_small(_clmul(base, base))
        k >>= 1
    return result


def _mod(v: int, nbits: int) -> int:
    """``v mod P`` where ``v`` has at most ``nbits`` bits: fold the high half onto the low half."""
    while nbits > 256:
        half = (nbits // 2 + 63) & ~63
        v = _clmul(v >> half, _xpow_mod(half)) ^ (v & ((1 << half) - 1))
        nbits = max(half, nbits - half + 64)
    return _mod_small(v)


def _reflect64(v: int) -> int:
    return int(f"{v:064b}"[::-1], 2)


class PurePythonCrc64:
    """An incremental CRC-64/GO-ISO. ``update`` any number of times, then ``digest`` (8 bytes, big-endian)."""

    __slots__ = ("_reg", "_pending")

    def __init__(self) -> None:
        self._reg = _MASK64  # the non-reflected register; init all ones
        self._pending = b""  # under 8 bytes kept for the next update

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed ``data`` (any length)."""
        chunk = self._pending + bytes(data) if self._pending else bytes(data)
        if len(chunk) < 8:
            self._pending = chunk
            return
        self._pending = b""
        nbits = len(chunk) * 8
        poly = int.from_bytes(chunk.translate(_REVERSE), "big") ^ (self._reg << (nbits - 64))
        self._reg = _mod(poly << 64, nbits + 64)

    def _final_register(self) -> int:
        reg = self._reg
        if self._pending:
            nbits = len(self._pending) * 8
            poly = int.from_bytes(self._pending.translate(_REVERSE), "big")
            reg = _mod_small((reg << nbits) ^ (poly << 64))
        return reg

    def value(self) -> int:
        """The CRC of everything fed so far, as Go's ``Sum64`` returns it."""
        return _reflect64(self._final_register()) ^ _MASK64

    def digest(self) -> bytes:
        """The CRC as tar-split stores it: 8 bytes, big-endian."""
        return self.value().to_bytes(8, "big")


try:
    import anycrc  # type: ignore[import-untyped]  # no type information shipped
except ImportError:  # no wheel for this platform: the pure-Python code does the job, slowly
    _ANYCRC_MODEL = None
else:
    _ANYCRC_MODEL = anycrc.Model("CRC64-GO-ISO")


class Crc64:
    """An incremental CRC-64/GO-ISO computed by anycrc (``calc`` continues from a previous value)."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed ``data`` (any length)."""
        self._value = _ANYCRC_MODEL.calc(data, self._value)  # type: ignore[union-attr]

    def value(self) -> int:
        """The CRC of everything fed so far, as Go's ``Sum64`` returns it."""
        return int(self._value)

    def digest(self) -> bytes:
        """The CRC as tar-split stores it: 8 bytes, big-endian."""
        return self.value().to_bytes(8, "big")


if _ANYCRC_MODEL is None:
    Crc64 = PurePythonCrc64  # type: ignore[misc,assignment]


def crc64(data: bytes) -> int:
    """CRC-64/GO-ISO of ``data``."""
    crc = Crc64()
    crc.update(data)
    return crc.value()
