"""Check Graph JSON payloads against Microsoft Graph's v1.0 CSDL (the ``$metadata`` document).

The schema is ``schemas/graph-v1.0-mail.xml``: the types this server returns (``user``, ``mailFolder``,
``message``, the types derived from them) and everything they are built of, cut unchanged out of
Microsoft's ``cleanMetadata-v1.0.xml`` by ``schemas/trim_csdl.py`` (MIT, see ``schemas/LICENSE``).

``Csdl.check_response(body)`` resolves the type a response claims through its ``@odata.context``
(``$metadata#Collection(message)``, ``$metadata#users('x')/mailFolders('y')/messages(a,b)``,
``$metadata#users/$entity`` ...) and, per entity, its ``@odata.type``; then every property must be declared
on that type or one of its base types (also on the open types ``message`` and ``user``: see ``Csdl``) with the JSON shape of its declared type
(OData JSON format 4.01, ``IEEE754Compatible=false``): primitives, enum members, nested complex types and
collections, ``Nullable="false"``, and with ``$select`` in the context only the selected properties (and
``id``). Instance annotations ``@odata.*`` and ``@removed`` are allowed, and ``prop@odata.*`` on a declared
property. Error bodies are checked against Graph's documented error shape (``error.code``, ``.message``,
``.innerError`` with ``date``, ``request-id``, ``client-request-id``).

Each check returns a list of violations (strings with a JSON path); an empty list means valid.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
SCHEMA_FILE = Path(__file__).with_name("schemas") / "graph-v1.0-mail.xml"
DEFAULT_NS = "microsoft.graph"

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?$")
_DURATION = re.compile(r"^-?P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INT_RANGES = {"Edm.Byte": (0, 255), "Edm.SByte": (-128, 127), "Edm.Int16": (-(2 ** 15), 2 ** 15 - 1),
               "Edm.Int32": (-(2 ** 31), 2 ** 31 - 1), "Edm.Int64": (-(2 ** 63), 2 ** 63 - 1)}
# Top-level annotations a response may carry next to "value" (OData JSON 4.01 section 4.5, 12).
_COLLECTION_ANNOTATIONS = ("@odata.context", "@odata.nextLink", "@odata.deltaLink", "@odata.count")


@dataclass
class Prop:
    name: str
    type: str  # qualified: Edm.String, microsoft.graph.recipient
    collection: bool
    nullable: bool
    navigation: bool = False


@dataclass
class TypeDef:
    kind: str  # EntityType | ComplexType | EnumType
    name: str  # qualified
    base: str | None = None
    abstract: bool = False
    open: bool = False
    props: dict[str, Prop] = field(default_factory=dict)
    members: frozenset[str] = frozenset()
    flags: bool = False


class ContextError(ValueError):
    pass


class Csdl:
    """``dynamic_properties``: whether an open type (``message``, ``user`` are declared ``OpenType="true"``,
    for open extensions) may carry undeclared properties. Off by default: Graph's v1.0 responses never
    send dynamic properties on them, so an undeclared name is a misspelling of ours."""

    def __init__(self, path: Path = SCHEMA_FILE, dynamic_properties: bool = False) -> None:
        self.dynamic_properties = dynamic_properties
        root = etree.parse(str(path)).getroot()
        self.aliases: dict[str, str] = {}
        self.types: dict[str, TypeDef] = {}
        self.entity_sets: dict[str, str] = {}
        schemas = root.iter(f"{EDM}Schema")
        raw: list[tuple[str, Any]] = []
        for schema in schemas:
            ns = schema.get("Namespace")
            if schema.get("Alias"):
                self.aliases[schema.get("Alias")] = ns
            raw.append((ns, schema))
        for ns, schema in raw:
            for el in schema:
                kind = etree.QName(el).localname
                if kind in ("EntityType", "ComplexType"):
                    t = TypeDef(kind, f"{ns}.{el.get('Name')}", self.qualify(el.get("BaseType")),
                                el.get("Abstract") == "true", el.get("OpenType") == "true")
                    for p in el:
                        tag = etree.QName(p).localname
                        if tag in ("Property", "NavigationProperty"):
                            coll, typ = _split_collection(p.get("Type"))
                            t.props[p.get("Name")] = Prop(p.get("Name"), self.qualify(typ) or typ, coll,
                                                          p.get("Nullable") != "false", tag == "NavigationProperty")
                    self.types[t.name] = t
                elif kind == "EnumType":
                    self.types[f"{ns}.{el.get('Name')}"] = TypeDef(
                        kind, f"{ns}.{el.get('Name')}", members=frozenset(m.get("Name") for m in el.iter(f"{EDM}Member")),
                        flags=el.get("IsFlags") == "true")
                elif kind == "EntityContainer":
                    for item in el:
                        local = etree.QName(item).localname
                        if local == "EntitySet":
                            self.entity_sets[item.get("Name")] = self.qualify(item.get("EntityType")) or ""
                        elif local == "Singleton":
                            self.entity_sets[item.get("Name")] = self.qualify(item.get("Type")) or ""

    # -- names -------------------------------------------------------------------------------
    def qualify(self, name: str | None) -> str | None:
        if not name:
            return None
        if name.startswith("Edm."):
            return name
        ns, _, local = name.rpartition(".")
        if not ns:
            return f"{DEFAULT_NS}.{local}"
        return f"{self.aliases.get(ns, ns)}.{local}"

    def derives(self, name: str, base: str) -> bool:
        seen: str | None = name
        while seen is not None:
            if seen == base:
                return True
            t = self.types.get(seen)
            seen = t.base if t is not None else None
        return False

    @functools.lru_cache(maxsize=None)  # noqa: B019 - one schema per process, never freed anyway
    def properties(self, name: str) -> dict[str, Prop]:
        out: dict[str, Prop] = {}
        chain = []
        seen: str | None = name
        while seen is not None and seen in self.types:
            chain.append(self.types[seen])
            seen = self.types[seen].base
        for t in reversed(chain):
            out.update(t.props)
        return out

    def is_open(self, name: str) -> bool:
        if not self.dynamic_properties:
            return False
        seen: str | None = name
        while seen is not None and seen in self.types:
            if self.types[seen].open:
                return True
            seen = self.types[seen].base
        return False

    # -- @odata.context ------------------------------------------------------------------------
    def resolve_context(self, context: str) -> tuple[str, bool, list[str] | None]:
        """(qualified type, is a collection, $select list or None) of a context URL."""
        if "#" not in context or "/$metadata" not in context.split("#", 1)[0]:
            raise ContextError(f"@odata.context {context!r} is not a $metadata URL")
        fragment = context.split("#", 1)[1]
        segments = _split_segments(fragment)
        if not segments:
            raise ContextError(f"@odata.context {context!r} names nothing")
        typ: str | None = None
        coll = False
        select: list[str] | None = None
        for i, seg in enumerate(segments):
            name, args = _segment(seg)
            if i == 0:
                if name == "Collection" and args is not None:
                    typ, coll = self.qualify(args), True
                    if typ not in self.types and not typ.startswith("Edm."):
                        raise ContextError(f"@odata.context names an unknown type {args!r}")
                    continue
                if name in self.entity_sets:
                    typ, coll = self.entity_sets[name], True
                elif self.qualify(name) in self.types:
                    typ, coll = self.qualify(name), False
                else:
                    raise ContextError(f"@odata.context starts with {name!r}: no such entity set or type")
            elif name == "$entity":
                coll = False
                continue
            elif name == "$delta":
                continue
            else:
                assert typ is not None
                prop = self.properties(typ).get(name)
                if prop is None or not prop.navigation:
                    raise ContextError(f"@odata.context: {typ} has no navigation property {name!r}")
                if prop.type not in self.types:
                    raise ContextError(f"@odata.context: {name!r} leads to {prop.type}, not in the vendored schema")
                typ, coll = prop.type, prop.collection
            if args is not None:
                if args.startswith("'") or _is_key(args):
                    if not coll:
                        raise ContextError(f"@odata.context: key {args!r} on a single {typ}")
                    coll = False
                else:
                    select = [a.strip() for a in args.split(",") if a.strip()]
        assert typ is not None
        return typ, coll, select

    # -- payloads ----------------------------------------------------------------------------
    def check_response(self, body: Any, status: int = 200) -> list[str]:
        """A top-level Graph JSON response (or a $batch sub-response body)."""
        if status >= 400 or (isinstance(body, dict) and "error" in body):
            return check_error(body)
        if not isinstance(body, dict):
            return [f"$: a Graph JSON response is an object, got {type(body).__name__}"]
        context = body.get("@odata.context")
        if not isinstance(context, str):
            return ["$: no @odata.context (Graph sends one with odata.metadata=minimal)"]
        try:
            typ, coll, select = self.resolve_context(context)
        except ContextError as exc:
            return [f"$: {exc}"]
        errors: list[str] = []
        for key in ("@odata.nextLink", "@odata.deltaLink"):
            if key in body and not (isinstance(body[key], str) and body[key].startswith("https://")):
                errors.append(f"$.{key}: not an absolute https URL: {body[key]!r}")
        if coll:
            if not isinstance(body.get("value"), list):
                return errors + ["$.value: a collection response has a 'value' array"]
            for key in body:
                if key != "value" and key not in _COLLECTION_ANNOTATIONS:
                    errors.append(f"$.{key}: not allowed next to 'value' in a collection response")
            for i, item in enumerate(body["value"]):
                errors += self.check_value(item, typ, False, True, f"$.value[{i}]", select)
            return errors
        return errors + self.check_value(body, typ, False, True, "$", select, top=True)

    def check_value(self, value: Any, typ: str, collection: bool, nullable: bool, path: str,
                    select: list[str] | None = None, top: bool = False) -> list[str]:
        if collection:
            if not isinstance(value, list):
                return [f"{path}: expected a JSON array (Collection({typ})), got {_kind(value)}"]
            out: list[str] = []
            for i, v in enumerate(value):
                out += self.check_value(v, typ, False, nullable, f"{path}[{i}]")
            return out
        if value is None:
            return [] if nullable else [f"{path}: null, but {typ} is declared Nullable=\"false\""]
        if typ.startswith("Edm."):
            why = _primitive(value, typ)
            return [f"{path}: {why}"] if why else []
        t = self.types.get(typ)
        if t is None:
            return []  # a navigation target outside the vendored schema: declared, contents not checked
        if t.kind == "EnumType":
            if not isinstance(value, str):
                return [f"{path}: enum {typ} is a JSON string, got {_kind(value)}"]
            names = [v.strip() for v in value.split(",")] if t.flags else [value]
            bad = [n for n in names if n not in t.members]
            return [f"{path}: {bad[0]!r} is not a member of {typ}"] if bad else []
        return self._check_structured(value, t, path, select, top)

    def _check_structured(self, value: Any, t: TypeDef, path: str, select: list[str] | None, top: bool) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path}: {t.name} is a JSON object, got {_kind(value)}"]
        errors: list[str] = []
        actual = t.name
        claimed = value.get("@odata.type")
        if claimed is not None:
            name = self.qualify(claimed[1:]) if isinstance(claimed, str) and claimed.startswith("#") else None
            if name is None or name not in self.types:
                errors.append(f"{path}.@odata.type: {claimed!r} is not a known type ('#microsoft.graph.<type>')")
            elif not self.derives(name, t.name):
                errors.append(f"{path}.@odata.type: {claimed!r} is not {t.name} or derived from it")
            elif self.types[name].abstract:
                errors.append(f"{path}.@odata.type: {claimed!r} is abstract")
            else:
                actual = name
        props = self.properties(actual)
        open_type = self.is_open(actual)
        removed = "@removed" in value
        for key, v in value.items():
            where = f"{path}.{key}"
            if key.startswith("@"):
                if key == "@removed":
                    if not (isinstance(v, dict) and v.get("reason") in ("changed", "deleted") and len(v) == 1):
                        errors.append(f"{where}: expected {{\"reason\": \"changed\"|\"deleted\"}}, got {v!r}")
                elif not key.startswith("@odata."):
                    errors.append(f"{where}: instance annotation not allowed here")
                elif key in ("@odata.etag", "@odata.id", "@odata.editLink", "@odata.readLink") and not isinstance(v, str):
                    errors.append(f"{where}: a string, got {_kind(v)}")
                continue
            if "@" in key:
                prop_name, _, ann = key.partition("@")
                if prop_name not in props and not open_type:
                    errors.append(f"{where}: annotates {prop_name!r}, which {actual} does not declare")
                elif not ann.startswith("odata."):
                    errors.append(f"{where}: property annotation not allowed here")
                continue
            prop = props.get(key)
            if prop is None:
                if not open_type:
                    errors.append(f"{where}: {actual} has no property {key!r}")
                continue
            if select is not None and key != "id" and key not in select and not removed:
                errors.append(f"{where}: not in $select ({','.join(select)})")
            errors += self.check_value(v, prop.type, prop.collection, prop.nullable, where)
        if t.kind == "EntityType" and (top or select is not None or claimed is not None) and "id" in props \
                and "id" not in value:
            errors.append(f"{path}: entity without 'id' (Graph always returns the key)")
        return errors


def check_error(body: Any) -> list[str]:
    """Graph's error shape: {"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return ["$: a Graph error response is {\"error\": {...}}"]
    err = body["error"]
    out = [f"$.error.{k}: a string is required" for k in ("code", "message") if not isinstance(err.get(k), str)]
    inner = err.get("innerError")
    if not isinstance(inner, dict):
        out.append("$.error.innerError: an object with date, request-id, client-request-id is required")
    else:
        out += [f"$.error.innerError.{k}: a string is required" for k in ("date", "request-id", "client-request-id")
                if not isinstance(inner.get(k), str)]
    return out


def check_batch(body: Any) -> list[str]:
    """The $batch envelope: {"responses": [{id, status, headers, body}]}; non-JSON bodies are base64."""
    if not isinstance(body, dict) or not isinstance(body.get("responses"), list):
        return ["$: a $batch response is {\"responses\": [...]}"]
    out: list[str] = []
    for i, sub in enumerate(body["responses"]):
        where = f"$.responses[{i}]"
        if not isinstance(sub, dict):
            out.append(f"{where}: an object is required")
            continue
        if not isinstance(sub.get("id"), str):
            out.append(f"{where}.id: a string is required")
        if not isinstance(sub.get("status"), int) or isinstance(sub.get("status"), bool):
            out.append(f"{where}.status: an integer is required")
        headers = sub.get("headers")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            out.append(f"{where}.headers: an object of strings is required")
            continue
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if "body" in sub and ctype is None:
            out.append(f"{where}.headers: a body without Content-Type")
        elif "body" in sub and not is_json_type(ctype):
            b = sub["body"]
            if not isinstance(b, str):
                out.append(f"{where}.body: {ctype} content is a base64 string, got {_kind(b)}")
            else:
                try:
                    base64.b64decode(b, validate=True)
                except (binascii.Error, ValueError):
                    out.append(f"{where}.body: {ctype} content is not valid base64")
    return out


def is_json_type(content_type: str | None) -> bool:
    """application/json or a +json/json subtype, parameters ignored (OData JSON 4.01, section 19)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


@functools.lru_cache(maxsize=1)
def schema() -> Csdl:
    return Csdl()


# -- helpers -------------------------------------------------------------------------------------
def _split_collection(t: str) -> tuple[bool, str]:
    if t.startswith("Collection(") and t.endswith(")"):
        return True, t[len("Collection("):-1]
    return False, t


def _split_segments(fragment: str) -> list[str]:
    """Split a context fragment on '/' outside parentheses and quotes."""
    out, cur, depth, quoted = [], [], 0, False
    for ch in fragment:
        if ch == "'" and depth:
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "/" and not depth and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return [s for s in out if s]


def _segment(seg: str) -> tuple[str, str | None]:
    if seg.endswith(")") and "(" in seg:
        name, _, args = seg.partition("(")
        return name, args[:-1]
    return seg, None


def _is_key(args: str) -> bool:
    # An unquoted key: a GUID or a number (a $select list is property names).
    return bool(_GUID.match(args)) or args.isdigit()


def _kind(v: Any) -> str:
    return "null" if v is None else {bool: "boolean", int: "number", float: "number", str: "string",
                                     list: "array", dict: "object"}.get(type(v), type(v).__name__)


def _primitive(v: Any, typ: str) -> str | None:
    if typ == "Edm.String":
        return None if isinstance(v, str) else f"Edm.String is a JSON string, got {_kind(v)}"
    if typ == "Edm.Boolean":
        return None if isinstance(v, bool) else f"Edm.Boolean is true/false, got {_kind(v)}"
    if typ in _INT_RANGES:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"{typ} is a JSON integer (IEEE754Compatible=false), got {_kind(v)}"
        lo, hi = _INT_RANGES[typ]
        return None if lo <= v <= hi else f"{v} is out of range for {typ}"
    if typ in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
        if isinstance(v, str) and v in ("NaN", "INF", "-INF") and typ != "Edm.Decimal":
            return None
        return None if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{typ} is a JSON number, got {_kind(v)}"
    if not isinstance(v, str):
        return f"{typ} is a JSON string, got {_kind(v)}"
    if typ == "Edm.DateTimeOffset":
        return None if _DATETIME.match(v) else f"{v!r} is not an Edm.DateTimeOffset (ISO 8601 with Z or offset)"
    if typ == "Edm.Date":
        return None if _DATE.match(v) else f"{v!r} is not an Edm.Date"
    if typ == "Edm.TimeOfDay":
        return None if _TIME.match(v) else f"{v!r} is not an Edm.TimeOfDay"
    if typ == "Edm.Duration":
        return None if _DURATION.match(v) and v not in ("P", "-P") else f"{v!r} is not an Edm.Duration"
    if typ == "Edm.Guid":
        return None if _GUID.match(v) else f"{v!r} is not an Edm.Guid"
    if typ == "Edm.Binary":
        try:
            base64.urlsafe_b64decode(v + "=" * (-len(v) % 4))
        except (binascii.Error, ValueError):
            return f"Edm.Binary is base64url, got {v[:40]!r}"
        return None
    return None  # Edm.Stream, geography ...: not produced by this server
