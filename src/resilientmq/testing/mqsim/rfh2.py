"""MQRFH2, the header JMS applications put in front of a message's data: ``RFH2`` (as ``ibmmq.RFH2``) and
the queue manager's conversion between RFH2 folders and message properties.

An MQRFH2 is a 36-byte fixed part (``StrucId``, ``Version``, ``StrucLength``, ``Encoding``,
``CodedCharSetId``, ``Format``, ``Flags``, ``NameValueCCSID``) followed by folders, each a 4-byte length
and that many bytes of XML, padded with blanks to a multiple of four. Its integers are in the byte order
of the encoding that describes it (the MQMD's, or the previous header's).
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from .constants import CMQC as C
from .errors import PYIFError

__all__ = ["FIXED_LENGTH", "RFH2", "is_big_endian", "properties_from_rfh2", "rfh2_from_properties"]

FIXED_LENGTH = 36
_FIXED = (
    "_StrucId",
    "Version",
    "StrucLength",
    "Encoding",
    "CodedCharSetId",
    "Format",
    "Flags",
    "NameValueCCSID",
)
_FIXED_FORMAT = "4s4l8s2l"
_STRUC_IDS = (b"RFH ", b"\xd9\xc6\xc8\x40")  # ASCII, and EBCDIC (a z/OS message got without conversion)
_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def is_big_endian(encoding: int) -> bool:
    """True when ``encoding``'s integers are big-endian (MQENC_INTEGER_NORMAL); a byte-swapped encoding
    value (above 0xFFFF) is read swapped."""
    if encoding > 0xFFFF:
        encoding = struct.unpack("<I", struct.pack(">I", encoding & 0xFFFFFFFF))[0]
    return bool(encoding & C.MQENC_INTEGER_NORMAL)


def _as_bytes(value: Any) -> Any:
    return value.encode("ascii") if isinstance(value, str) else value


class RFH2:
    """``ibmmq.RFH2``: the fixed fields by name (``rfh2["Format"]``), folders added with :meth:`add_folder`
    (each becomes the fields ``<name>Length`` and ``<name>``), :meth:`pack` and :meth:`unpack`."""

    def __init__(self, **kw: Any) -> None:
        self._values: dict[str, Any] = {
            "_StrucId": C.MQRFH_STRUC_ID, "Version": C.MQRFH_VERSION_2, "StrucLength": 0,
            "Encoding": C.MQENC_NATIVE, "CodedCharSetId": C.MQCCSI_Q_MGR, "Format": C.MQFMT_NONE, "Flags": 0,
            "NameValueCCSID": C.MQCCSI_Q_MGR,
        }  # fmt: skip
        self._folders: list[str] = []
        self.set(**kw)

    # -- field access, as MQOpts ---------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            raise KeyError(key)
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self._values:
            raise AttributeError(f"RFH2 has no field {key!r}")
        self._values[key] = _as_bytes(value)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def set(self, **kw: Any) -> None:
        for key, value in kw.items():
            self[key] = value

    def get(self) -> dict[str, Any]:
        return dict(self._values)

    def get_folders(self) -> list[str]:
        """The folder names, in order."""
        return list(self._folders)

    def get_length(self) -> int:
        return FIXED_LENGTH + sum(4 + len(self._values[f]) for f in self._folders)

    @staticmethod
    def get_folder_name(folder_data: bytes) -> str:
        """The root element's name of a folder; a folder that is not well-formed XML is named by its
        leading ``<name``, and one without even that is refused (PYIFError)."""
        try:
            return str(ET.fromstring(folder_data).tag)
        except ET.ParseError as exc:
            found = re.match(rb"^<([^\s>/]+)", folder_data)
            if found is None:
                raise PYIFError(f"RFH2 - XML Folder not well formed. Data {folder_data!r}: {exc}") from exc
            return found.group(1).decode("utf-8", "replace")

    def add_folder(self, folder_data: bytes) -> None:
        """Append an XML folder (bytes), padded with blanks to a multiple of four; StrucLength follows."""
        if not isinstance(folder_data, bytes):
            raise TypeError("an RFH2 folder must be bytes")
        name = self.get_folder_name(folder_data)
        padded = folder_data + b" " * (-len(folder_data) % 4)
        self._add(name, padded)
        self._values["StrucLength"] = self.get_length()

    def _add(self, name: str, data: bytes) -> None:
        if name not in self._folders:
            self._folders.append(name)
        self._values[name + "Length"] = len(data)
        self._values[name] = data

    def is_big_endian(self, encoding: int) -> bool:
        return is_big_endian(encoding)

    # -- the wire form ---------------------------------------------------------------------------------
    def pack(self, encoding: int | None = None) -> bytes:
        """The header's bytes; integers big-endian when ``encoding`` says so, else native order."""
        order = ">" if encoding is not None and is_big_endian(encoding) else "="
        v = self._values
        out = [struct.pack(order + _FIXED_FORMAT, *(v[name] for name in _FIXED))]
        for folder in self._folders:
            data = v[folder]
            out.append(
                struct.pack(order + "l", v[folder + "Length"]) + data.ljust(v[folder + "Length"], b" ")
            )
        return b"".join(out)

    def unpack(self, buff: bytes, encoding: int | None = None) -> RFH2:
        """Parse the header at the start of ``buff`` (folders and all); the byte order comes from
        ``encoding`` or, without it, from the Version field."""
        if not isinstance(buff, bytes):
            raise TypeError("RFH2.unpack takes bytes")
        if buff[:4] not in _STRUC_IDS:
            raise PYIFError(f"RFH2 - _StrucId not MQRFH_STRUC_ID. Value: {buff[:4]!r}")
        if len(buff) < FIXED_LENGTH:
            raise PYIFError(f"RFH2 - Buffer too short. Should be 36+ bytes instead of {len(buff)}")
        big = is_big_endian(encoding) if encoding is not None else buff[4:5] == b"\x00"
        order = ">" if big else "<"
        fixed = struct.unpack(order + _FIXED_FORMAT, buff[:FIXED_LENGTH])
        self._values = dict(zip(_FIXED, fixed, strict=True))
        self._folders = []
        length = self._values["StrucLength"]
        if length < FIXED_LENGTH:
            raise PYIFError('RFH2 - "StrucLength" is not valid. Check numeric encoding.')
        if length > len(buff):
            raise PYIFError(f"RFH2 - Buffer too short. Expected: {length} Buffer Length: {len(buff)}")
        rest = buff[FIXED_LENGTH:length]
        while rest:
            (size,) = struct.unpack(order + "l", rest[:4])
            data = rest[4 : 4 + size]
            data = data.split(b"\0", 1)[0]
            self._add(self.get_folder_name(data), data)
            self._values[self._folders[-1] + "Length"] = size
            rest = rest[4 + size :]
        return self


# -- properties <-> RFH2 folders ------------------------------------------------------------------------
_DT = {"i1": "MQTYPE_INT8", "i2": "MQTYPE_INT16", "i4": "MQTYPE_INT32", "int": "MQTYPE_INT32",
       "i8": "MQTYPE_INT64", "r4": "MQTYPE_FLOAT32", "r8": "MQTYPE_FLOAT64", "boolean": "MQTYPE_BOOLEAN",
       "bin.hex": "MQTYPE_BYTE_STRING", "string": "MQTYPE_STRING"}  # fmt: skip


def _folder_of(name: str, folders: tuple[str, ...]) -> tuple[str, str]:
    head, dot, tail = name.partition(".")
    return (head, tail) if dot and head in folders else ("usr", name)


def _element(name: str, value: Any, ptype: int) -> str:
    dt = next((k for k, v in _DT.items() if getattr(C, v) == ptype and k not in ("int", "string")), None)
    if value is None:
        return f'<{name} xsi:nil="true"></{name}>'
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, bytes):
        text = value.hex()
    else:
        text = escape(str(value))
    attr = f' dt="{dt}"' if dt else ""
    return f"<{name}{attr}>{text}</{name}>"


def rfh2_from_properties(
    properties: dict[str, tuple[Any, int]], folders: tuple[str, ...], fmt: bytes, encoding: int, ccsid: int
) -> bytes:
    """The MQRFH2 a queue manager puts in front of a message's data to deliver its properties to a getter
    without a message handle (``PROPCTL(COMPAT)``, ``MQGMO_PROPERTIES_FORCE_MQRFH2``)."""
    grouped: dict[str, list[str]] = {}
    for name, (value, ptype) in properties.items():
        folder, element = _folder_of(name, folders)
        grouped.setdefault(folder, []).append(_element(element, value, ptype))
    header = RFH2(Encoding=encoding, CodedCharSetId=ccsid, Format=fmt, NameValueCCSID=1208)
    for folder, elements in grouped.items():
        header.add_folder(f"<{folder}>{''.join(elements)}</{folder}>".encode())
    return header.pack()


def _value(element: ET.Element) -> tuple[Any, int]:
    if element.get(_NIL) == "true" or element.get("xsi:nil") == "true":
        return None, int(C.MQTYPE_NULL)
    ptype = int(getattr(C, _DT.get(element.get("dt") or "string", "MQTYPE_STRING")))
    text = element.text or ""
    if ptype == C.MQTYPE_BOOLEAN:
        return text.strip() in ("1", "true"), ptype
    if ptype in (C.MQTYPE_INT8, C.MQTYPE_INT16, C.MQTYPE_INT32, C.MQTYPE_INT64):
        return int(text), ptype
    if ptype in (C.MQTYPE_FLOAT32, C.MQTYPE_FLOAT64):
        return float(text), ptype
    if ptype == C.MQTYPE_BYTE_STRING:
        return bytes.fromhex(text), ptype
    return text, ptype


def properties_from_rfh2(
    body: bytes, encoding: int, folders: tuple[str, ...]
) -> tuple[dict[str, tuple[Any, int]], RFH2, bytes] | None:
    """A message whose data starts with an MQRFH2 holding only property folders: its properties, the
    header and the data after it. None when the header carries other folders (it is delivered as it is)."""
    try:
        header = RFH2().unpack(body, encoding)
    except (PYIFError, struct.error):
        return None
    if not set(header.get_folders()) <= set(folders):
        return None
    props: dict[str, tuple[Any, int]] = {}
    for folder in header.get_folders():
        wrapped = header[folder].rstrip(b" ")
        try:
            root = ET.fromstring(
                b'<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' + wrapped + b"</r>"
            )
        except ET.ParseError:
            return None
        for element in next(iter(root), []):
            name = element.tag if folder == "usr" else f"{folder}.{element.tag}"
            props[name] = _value(element)
    return props, header, body[header["StrucLength"] :]
