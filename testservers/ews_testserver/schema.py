"""Microsoft's EWS schemas (MS-OXWS*, vendored in ``schemas/``), restricted per Exchange version.

Real Exchange validates every request against the schema of its own version and answers a request
that does not validate with one SOAP fault, ``ErrorSchemaValidation``, for the whole request. This
module gives the test server the same behaviour:

- ``compiled(profile)`` loads the 55 XSDs (``version="Exchange2016"``), edits the trees for the
  profile (``RESTRICTIONS`` below: enumeration values and elements the version does not know are
  removed, what Exchange Online has beyond the 2016 spec is added) and compiles one
  ``lxml.etree.XMLSchema`` per profile, once per process (cached, thread-safe).
- ``validate_request(element, profile, raw)`` checks one parsed element (a SOAP Header child or the
  Body's child) in place (no copy; ~0.05-0.2 ms for a typical request) and returns the violations
  in Exchange's (.NET's) wording, with the line and position in the original request.
- ``validate_response(...)`` checks what the server sends (used when the protocol audit is on).

Loading notes (see /work/shared/protocol/README.md): one driver schema per namespace that includes
every file of it once; the messages driver imports the types driver first (libxml2 honours only the
first import of a namespace); ``MS-OXWSCEXT-messages.xsd`` includes itself and
``MS-OXWSSRCH-messages.xsd`` has an ``<xs:include/>`` without location: both are dropped; the
``xml:`` namespace is served by a tiny ``xml.xsd``. Everything is resolved in memory.
"""

from __future__ import annotations

import copy
import re
import threading
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
XS = "http://www.w3.org/2001/XMLSchema"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
S = "http://schemas.xmlsoap.org/soap/envelope/"


# ---------------------------------------------------------------------------------------------
# Profiles

@dataclass(frozen=True)
class Profile:
    name: str
    rank: int  # order of the versions (a restriction "since" a rank applies to the ranks below it)
    build: tuple[int, int, int, int]  # ServerVersionInfo Major/Minor/MajorBuild/MinorBuild
    version: str  # ServerVersionInfo Version
    build_source: str

    def server_version_info(self) -> dict[str, str]:
        major, minor, mbuild, nbuild = self.build
        return {"MajorVersion": str(major), "MinorVersion": str(minor), "MajorBuildNumber": str(mbuild),
                "MinorBuildNumber": str(nbuild), "Version": self.version}


PROFILES: dict[str, Profile] = {p.name: p for p in (
    # Exchange 2010 SP2 RTM (build 14.2.247.5); Version as Exchange 2010 SP2 servers report it.
    Profile("Exchange2010_SP2", 0, (14, 2, 247, 5), "Exchange2010_SP2",
            "Exchange 2010 SP2 RTM build 14.2.247.5 (Exchange Server build numbers and release dates)"),
    # Exchange 2013 CU23 with a security update; a captured CU23 response carries Version="V2_23".
    Profile("Exchange2013", 1, (15, 0, 1497, 7), "V2_23",
            "Exchange 2013 CU23 (15.0.1497.x, after SP1 = 15.0.847), as seen in a captured CU23 response"),
    Profile("Exchange2016", 2, (15, 1, 2507, 6), "V2017_07_11",
            "Exchange 2016 CU23 (15.1.2507.6); Version as 2016 CU servers report it"),
    Profile("Exchange2019", 3, (15, 2, 1544, 4), "V2017_07_11",
            "Exchange 2019 CU14 (15.2.1544.4), as seen in captured responses"),
    Profile("Online", 4, (15, 20, 8769, 35), "V2018_01_08",
            "Exchange Online (15.20.x, Version V2018_01_08), as seen in captured responses"),
)}
DEFAULT_PROFILE = "Exchange2016"
_RANK = {"Exchange2007": -3, "Exchange2007_SP1": -3, "Exchange2010": -2, "Exchange2010_SP1": -1,
         "Exchange2010_SP2": 0, "Exchange2013": 1, "Exchange2013_SP1": 1, "Exchange2016": 2, "Exchange2019": 3,
         "Online": 4}


def profile(name: str | None) -> Profile:
    if name is None:
        return PROFILES[DEFAULT_PROFILE]
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown Exchange version {name!r}; one of {', '.join(PROFILES)}") from None


# ---------------------------------------------------------------------------------------------
# Restrictions: what each version does not know (or, for Online, knows beyond the 2016 spec).
#
# ``since``: the first version that has it (the profiles ranked below lose it);
# ``only``: added for exactly these profiles (absent from the 2016 files).

_DOC_DFID = ("learn.microsoft.com/exchange/client-developer/web-service-reference/distinguishedfolderid "
             "(2010 page aa580808(v=exchg.140) lists the values Exchange 2010 has; archiveinbox: 'Versions of "
             "Exchange starting with build number 15.00.0913.09'); per-value versions as exchangelib's "
             "folders/known_folders.py (supported_from)")
_DOC_RSV = ("learn.microsoft.com/exchange/client-developer/web-service-reference/requestserverversion "
            "(Version attribute values) and MS-OXWSCDATA ExchangeVersionType")


@dataclass(frozen=True)
class EnumChange:
    simple_type: str
    values: tuple[str, ...]
    since: str | None = None
    only: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class ElementChange:
    complex_type: str
    element: str
    since: str
    source: str = ""


RESTRICTIONS: tuple[EnumChange | ElementChange, ...] = (
    # -- RequestServerVersion: a server accepts the versions up to its own ------------------------
    EnumChange("ExchangeVersionType", ("Exchange2013", "Exchange2013_SP1"), since="Exchange2013", source=_DOC_RSV),
    EnumChange("ExchangeVersionType", ("Exchange2016",), since="Exchange2016", source=_DOC_RSV),
    # -- DistinguishedFolderId ------------------------------------------------------------------
    EnumChange("DistinguishedFolderIdNameType",
               ("syncissues", "conflicts", "localfailures", "serverfailures", "recipientcache", "quickcontacts",
                "conversationhistory", "adminauditlogs", "todosearch", "mycontacts", "imcontactlist",
                "peopleconnect", "favorites", "directory", "archiveinbox"),
               since="Exchange2013", source=_DOC_DFID),
    EnumChange("DistinguishedFolderIdNameType",
               ("mecontact", "personmetadata", "recoverableitemsdiscoveryholds",
                "archiverecoverableitemsdiscoveryholds"),
               since="Exchange2016",
               source="in the MS-OXWS 2016 schema only (not in the reference page's table): kept from 2016 on"),
    EnumChange("DistinguishedFolderIdNameType",
               ("archive", "allcategorizeditems", "allcontacts", "allitems", "allpersonmetadata", "companycontacts",
                "dlppolicyevaluation", "fromfavoritesenders", "inference", "onenotepagepreviews",
                "peoplecentricconversationbuddies", "qedcdefaultretention", "qedclongretention",
                "qedcmediumretention", "qedcshortretention", "quarantinedemail", "quarantinedemaildefaultcategory",
                "recoverableitemssubstrateholds", "relevantcontacts", "sharepointnotifications", "shortnotes",
                "temporarysaves", "usercuratedcontacts"),
               only=("Online",),
               source="Exchange Online's schema (not in the 2016 spec nor the reference table; "
                      "exchangelib known_folders.py: supported_from=EXCHANGE_O365)"),
    # -- properties (FieldURI) and the elements behind them --------------------------------------
    EnumChange("UnindexedFieldURIType", ("item:TextBody", "meeting:ProposedStart", "meeting:ProposedEnd"),
               since="Exchange2013",
               source="reference pages textbody / proposedstart ('introduced in Exchange Server 2013'); "
                      "exchangelib fields supported_from=EXCHANGE_2013"),
    EnumChange("UnindexedFieldURIType", ("message:ReminderMessageData",), since="Exchange2013",
               source="exchangelib supported_from=EXCHANGE_2013_SP1"),
    EnumChange("UnindexedFieldURIType", ("folder:DistinguishedFolderId",), since="Exchange2016",
               source="exchangelib folders/base.py: DistinguishedFolderId supported_from=EXCHANGE_2016"),
    ElementChange("ItemType", "TextBody", since="Exchange2013",
                  source="reference page textbody: 'introduced in Exchange Server 2013'"),
    ElementChange("BaseFolderType", "DistinguishedFolderId", since="Exchange2016",
                  source="exchangelib folders/base.py: DistinguishedFolderId supported_from=EXCHANGE_2016"),
)


def _applies(change: EnumChange | ElementChange, prof: Profile) -> str | None:
    """'remove', 'add' or None for this profile."""
    if isinstance(change, EnumChange) and change.only:
        return None if prof.name in change.only else "remove"
    since = change.since
    assert since is not None
    return "remove" if prof.rank < _RANK[since] else None


# ---------------------------------------------------------------------------------------------
# Loading and compiling

_XML_XSD = (b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            b'targetNamespace="http://www.w3.org/XML/1998/namespace">'
            b'<xs:attribute name="lang" type="xs:language"/></xs:schema>')
_BASE = "mem:/ews-schemas/"
_lock = threading.Lock()
_sources: dict[str, etree._ElementTree] | None = None
_compiled: dict[str, CompiledSchema] = {}


def _load_sources() -> dict[str, etree._ElementTree]:
    global _sources
    if _sources is None:
        docs: dict[str, etree._ElementTree] = {}
        for path in sorted(SCHEMA_DIR.glob("*.xsd")):
            doc = etree.parse(str(path))
            root = doc.getroot()
            for inc in root.findall(f"{{{XS}}}include"):
                if inc.get("schemaLocation") in (None, path.name):
                    root.remove(inc)
            for imp in root.findall(f"{{{XS}}}import"):
                if imp.get("namespace") == "http://www.w3.org/XML/1998/namespace":
                    imp.set("schemaLocation", "xml.xsd")
            # RequestServerVersion/@Version is fixed="Exchange2016" in the spec's file: a server accepts
            # every version up to its own (and answers ErrorInvalidServerVersion for others, see
            # ``accepted_versions``), so the fixed value is dropped; the enumeration still applies.
            for at in root.iterfind(f".//{{{XS}}}element[@name='RequestServerVersion']//{{{XS}}}attribute[@name='Version']"):
                at.attrib.pop("fixed", None)
            docs[path.name] = doc
        if not docs:
            raise FileNotFoundError(f"no EWS schemas in {SCHEMA_DIR}")
        _sources = docs
    return _sources


def _edit(docs: dict[str, etree._ElementTree], prof: Profile) -> list[str]:
    """Apply RESTRICTIONS for ``prof`` to (copies of) the trees; returns what was done."""
    done: list[str] = []
    for change in RESTRICTIONS:
        if isinstance(change, EnumChange):
            action = "add" if change.only and prof.name in change.only else _applies(change, prof)
            if action is None:
                continue
            for doc in docs.values():
                for st in doc.getroot().iterfind(f"{{{XS}}}simpleType[@name='{change.simple_type}']"):
                    restriction = st.find(f"{{{XS}}}restriction")
                    present = {e.get("value"): e for e in restriction.iterfind(f"{{{XS}}}enumeration")}
                    for value in change.values:
                        if action == "remove" and value in present:
                            restriction.remove(present[value])
                            done.append(f"-{change.simple_type}:{value}")
                        elif action == "add" and value not in present:
                            etree.SubElement(restriction, f"{{{XS}}}enumeration", value=value)
                            done.append(f"+{change.simple_type}:{value}")
        elif _applies(change, prof) == "remove":
            for doc in docs.values():
                for ct in doc.getroot().iterfind(f"{{{XS}}}complexType[@name='{change.complex_type}']"):
                    for el in ct.iter(f"{{{XS}}}element"):
                        if el.get("name") == change.element:
                            el.getparent().remove(el)
                            done.append(f"-{change.complex_type}/{change.element}")
    return done


@dataclass
class CompiledSchema:
    profile: Profile
    schema: etree.XMLSchema
    changes: list[str]
    enum_types: dict[frozenset[str], str] = field(default_factory=dict)  # value set -> type QName
    element_types: dict[str, set[str]] = field(default_factory=dict)  # element local name -> types
    attribute_types: dict[str, set[str]] = field(default_factory=dict)
    accepted_versions: frozenset[str] = frozenset()
    global_elements: set[str] = field(default_factory=set)  # Clark names of the top-level declarations
    lock: threading.Lock = field(default_factory=threading.Lock)


def _qname(doc_root: etree._Element, value: str) -> str:
    prefix, _, local = value.rpartition(":")
    ns = doc_root.nsmap.get(prefix or None, "")
    return f"{ns}:{local}" if ns else local


def compiled(name: str | None = None) -> CompiledSchema:
    """The schema of a profile, compiled once per process."""
    prof = profile(name)
    cached = _compiled.get(prof.name)
    if cached is not None:
        return cached
    with _lock:
        cached = _compiled.get(prof.name)
        if cached is not None:
            return cached
        docs = {n: copy.deepcopy(d) for n, d in _load_sources().items()}
        changes = _edit(docs, prof)
        memory = {n: etree.tostring(d) for n, d in docs.items()}
        types = [n for n, d in docs.items() if d.getroot().get("targetNamespace") == T]
        messages = [n for n, d in docs.items() if d.getroot().get("targetNamespace") == M]
        memory["types-driver.xsd"] = (
            f'<xs:schema xmlns:xs="{XS}" targetNamespace="{T}" elementFormDefault="qualified">'
            + "".join(f'<xs:include schemaLocation="{n}"/>' for n in types) + "</xs:schema>").encode()
        memory["xml.xsd"] = _XML_XSD
        driver = (f'<xs:schema xmlns:xs="{XS}" targetNamespace="{M}" elementFormDefault="qualified">'
                  f'<xs:import namespace="{T}" schemaLocation="types-driver.xsd"/>'
                  + "".join(f'<xs:include schemaLocation="{n}"/>' for n in messages) + "</xs:schema>").encode()

        class _Resolver(etree.Resolver):
            def resolve(self, url, pubid, context):  # noqa: ANN001, ANN201 - lxml's signature
                data = memory.get(url.rsplit("/", 1)[-1])
                return self.resolve_string(data, context, base_url=url) if data is not None else None

        parser = etree.XMLParser(no_network=True)
        parser.resolvers.add(_Resolver())
        schema = etree.XMLSchema(etree.fromstring(driver, parser, base_url=_BASE + "messages-driver.xsd"))
        result = CompiledSchema(prof, schema, changes)
        for doc in docs.values():
            root = doc.getroot()
            tns = root.get("targetNamespace")
            for st in root.iter(f"{{{XS}}}simpleType"):
                values = frozenset(e.get("value") for e in st.iterfind(f"{{{XS}}}restriction/{{{XS}}}enumeration"))
                if values and st.get("name"):
                    result.enum_types.setdefault(values, f"{tns}:{st.get('name')}")
                    if st.get("name") == "ExchangeVersionType":
                        result.accepted_versions = values
            for el in root.iterfind(f"{{{XS}}}element"):
                result.global_elements.add(f"{{{tns}}}{el.get('name')}")
            for el in root.iter(f"{{{XS}}}element"):
                if el.get("name") and el.get("type"):
                    result.element_types.setdefault(el.get("name"), set()).add(_qname(root, el.get("type")))
            for at in root.iter(f"{{{XS}}}attribute"):
                if at.get("name") and at.get("type"):
                    result.attribute_types.setdefault(at.get("name"), set()).add(_qname(root, at.get("type")))
        _compiled[prof.name] = result
        return result


# ---------------------------------------------------------------------------------------------
# Validation and Exchange's wording

@dataclass
class Violation:
    message: str  # Exchange's (.NET's) wording, e.g. "The 'Id' attribute is invalid - ..."
    line: int
    position: int
    raw: str  # libxml2's message
    element: str  # Clark name of the element concerned

    def __str__(self) -> str:
        return f"{self.message} (line {self.line}, position {self.position})"


_FACETS = {"enumeration": "Enumeration", "minInclusive": "MinInclusive", "maxInclusive": "MaxInclusive",
           "minExclusive": "MinExclusive", "maxExclusive": "MaxExclusive", "pattern": "Pattern",
           "minLength": "MinLength", "maxLength": "MaxLength", "length": "Length"}
_RE_ELEMENT = re.compile(r"^Element '(?:\{(?P<ns>[^}]*)\})?(?P<name>[^']+)'(?:, attribute '(?P<attr>[^']+)')?: (?P<rest>.*)$", re.S)
_RE_FACET = re.compile(r"^\[facet '(?P<facet>\w+)'\] The value '(?P<value>.*?)' ")
_RE_ATOMIC = re.compile(r"^'(?P<value>.*?)' is not a valid value of the (?:atomic|local atomic|union|list) type '(?:\{(?P<ns>[^}]*)\})?(?P<type>[^']+)'")
_RE_EXPECTED = re.compile(r"Expected is(?: one of)? \( (?P<list>[^)]*) \)")
_XSD_TYPES = {"xs:int": "Int", "xs:boolean": "Boolean", "xs:dateTime": "DateTime", "xs:long": "Long"}


def _clark_split(value: str) -> tuple[str, str]:
    value = value.strip()
    if value.startswith("{"):
        ns, _, local = value[1:].partition("}")
        return ns, local
    return "", value


def _expected(rest: str) -> str:
    match = _RE_EXPECTED.search(rest)
    if not match:
        return ""
    names = [_clark_split(v) for v in match.group("list").split(",") if v.strip()]
    by_ns: dict[str, list[str]] = {}
    for ns, local in names:
        by_ns.setdefault(ns, []).append(local)
    parts = [f"'{' '.join(locals_)}' in namespace '{ns}'" for ns, locals_ in by_ns.items()]
    return " List of possible elements expected: " + " as well as ".join(parts) + "."


def _type_of(cs: CompiledSchema, element: str, attr: str | None, value: str, facet: str | None,
             enum_set: str | None) -> str:
    if facet == "enumeration" and enum_set is not None:
        values = frozenset(re.findall(r"'([^']*)'", enum_set))
        if values in cs.enum_types:
            return cs.enum_types[values]
    candidates = cs.attribute_types.get(attr, set()) if attr else cs.element_types.get(element, set())
    if len(candidates) == 1:
        return next(iter(candidates))
    return "http://www.w3.org/2001/XMLSchema:string" if not candidates else sorted(candidates)[0]


def _wording(cs: CompiledSchema, raw: str) -> tuple[str, str]:
    """(Exchange's message, element Clark name) for one libxml2 message."""
    match = _RE_ELEMENT.match(raw.strip())
    if not match:
        return raw.strip(), ""
    ns, name, attr, rest = match.group("ns") or "", match.group("name"), match.group("attr"), match.group("rest")
    clark = f"{{{ns}}}{name}" if ns else name
    qualified = f"{ns}:{name}" if ns else name
    facet = _RE_FACET.match(rest)
    atomic = _RE_ATOMIC.match(rest)
    if facet or atomic:
        value = (facet or atomic).group("value")
        facet_name = facet.group("facet") if facet else None
        enum_set = rest[rest.find("{"):] if facet_name == "enumeration" else None
        if atomic:
            dtype = f"{atomic.group('ns')}:{atomic.group('type')}" if atomic.group("ns") else atomic.group("type")
            dtype = dtype.replace("xs:", "http://www.w3.org/2001/XMLSchema:")
        else:
            dtype = _type_of(cs, name, attr, value, facet_name, enum_set)
        what = f"The '{attr}' attribute is invalid" if attr else f"The '{qualified}' element is invalid"
        tail = f" - The {_FACETS.get(facet_name, facet_name)} constraint failed." if facet_name else (
            f" - The string '{value}' is not a valid {dtype.rsplit(':', 1)[-1]} value.")
        return f"{what} - The value '{value}' is invalid according to its datatype '{dtype}'{tail}", clark
    if "This element is not expected" in rest:
        return (f"The element '{{parent}}' in namespace '{{parent_ns}}' has invalid child element '{name}' in "
                f"namespace '{ns}'.{_expected(rest)}"), clark
    if "Missing child element" in rest:
        return f"The element '{name}' in namespace '{ns}' has incomplete content.{_expected(rest)}", clark
    if "is not allowed" in rest and attr:
        return f"The '{attr}' attribute is not declared.", clark
    required = re.search(r"The attribute '([^']+)' is required but missing", rest)
    if required:
        return f"The required attribute '{required.group(1)}' is missing.", clark
    if "No matching global declaration" in rest:
        return f"The '{qualified}' element is not declared.", clark
    if "Character content other than whitespace is not allowed" in rest or "Element content is not allowed" in rest:
        return f"The element '{name}' in namespace '{ns}' cannot contain text.", clark
    return rest.strip(), clark


def _positions(raw: bytes) -> list[tuple[int, int, bytes]]:
    """(line, 1-based column of the name after '<', start tag bytes) of every element, document order."""
    out: list[tuple[int, int, bytes]] = []
    lines = raw.split(b"\n")
    parser = xml.parsers.expat.ParserCreate()

    def start(_name: str, _attrs: object) -> None:
        line, col = parser.CurrentLineNumber, parser.CurrentColumnNumber
        text = lines[line - 1] if line - 1 < len(lines) else b""
        end = text.find(b">", col)
        out.append((line, col + 2, text[col:end if end >= 0 else len(text)]))

    parser.StartElementHandler = start
    try:
        parser.Parse(raw, True)
    except xml.parsers.expat.ExpatError:
        pass
    return out


def _locate(elem: etree._Element, path: str | None) -> etree._Element | None:
    if not path:
        return None
    steps = [s for s in path.split("/") if s]
    node: etree._Element | None = elem
    for i, step in enumerate(steps):
        match = re.match(r"^(?:(\w+):)?([\w.-]+|\*)(?:\[(\d+)\])?$", step)
        if match is None or node is None:
            return None
        prefix, local, index = match.groups()
        if i == 0:
            if etree.QName(node).localname != local and local != "*":
                return None
            continue
        kids = [c for c in node if isinstance(c.tag, str) and (local == "*" or etree.QName(c).localname == local)]
        n = int(index) - 1 if index else 0
        node = kids[n] if 0 <= n < len(kids) else None
    return node


def _explain(cs: CompiledSchema, elem: etree._Element, raw: bytes | None) -> list[Violation]:
    out: list[Violation] = []
    doc_order: dict[etree._Element, int] | None = None
    positions: list[tuple[int, int, bytes]] | None = None
    for entry in cs.schema.error_log:
        message, clark = _wording(cs, entry.message)
        target = _locate(elem, entry.path)
        if target is not None and "{parent}" in message:
            parent = target.getparent()
            pq = etree.QName(parent) if parent is not None else None
            message = message.replace("{parent_ns}", pq.namespace or "" if pq else "").replace(
                "{parent}", pq.localname if pq else "")
        line, position = entry.line, entry.column or 0
        if raw is not None and target is not None:
            if positions is None:
                positions = _positions(raw)
                doc_order = {e: i for i, e in enumerate(elem.getroottree().getroot().iter(etree.Element))}
            index = doc_order.get(target) if doc_order is not None else None
            if index is not None and index < len(positions):
                line, position, tag = positions[index]
                attr = re.match(r"^The '([^']+)' attribute|^The required attribute", message)
                if attr and attr.group(1):
                    at = re.search(rb"\s(?:\w+:)?" + re.escape(attr.group(1).encode()) + rb"\s*=", tag)
                    if at:
                        position += at.start()  # tag[0] is '<', at.start() the blank before the name
        out.append(Violation(message, line, position, entry.message, clark))
    return out


def validate(elem: etree._Element, profile_name: str | None = None, raw: bytes | None = None) -> list[Violation]:
    """Validate one element (a Header child, the Body's child) in place against the profile's schema."""
    cs = compiled(profile_name)
    if elem.tag not in cs.global_elements:
        # Not in the vendored MS-OXWS* set (e.g. GetUserOofSettingsRequest, MS-OXWSOOF): nothing to
        # check it against; the server answers such operations itself (ErrorInvalidOperation).
        return []
    with cs.lock:  # an XMLSchema's error_log belongs to the last validation: one at a time per schema
        if cs.schema.validate(elem):
            return []
        return _explain(cs, elem, raw)


def validate_request(elem: etree._Element, profile_name: str | None = None, raw: bytes | None = None) -> list[str]:
    """Violations of a request element in Exchange's wording, each with '(line N, position P)'."""
    return [str(v) for v in validate(elem, profile_name, raw)]


def schema_failure_text(violation: Violation) -> str:
    return f"The request failed schema validation: {violation.message}"


# -- responses ------------------------------------------------------------------------------------

_FAULT_DETAIL = {f"{{{E}}}ResponseCode", f"{{{E}}}Message", f"{{{T}}}MessageXml"}


def validate_response_envelope(data: bytes, profile_name: str | None = None) -> list[str]:
    """Check a response the server sends: the Header's ServerVersionInfo and the Body's child against
    the schema; a SOAP fault's shape (faultcode a:<code>, faultstring, detail with e:ResponseCode,
    e:Message and optionally t:MessageXml, whose children are validated as t:MessageXml content)."""
    try:
        root = etree.fromstring(data, etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"the response is not well-formed XML: {exc}"]
    problems: list[str] = []
    if root.tag != f"{{{S}}}Envelope":
        return [f"the response root is {root.tag}, not a SOAP 1.1 Envelope"]
    header = root.find(f"{{{S}}}Header")
    body = root.find(f"{{{S}}}Body")
    if header is not None:
        for child in header:
            problems += [f"Header: {v}" for v in validate_request(child, profile_name)]
    if body is None or len(body) != 1:
        return problems + ["the response Body must have exactly one child"]
    child = body[0]
    if child.tag == f"{{{S}}}Fault":
        problems += _check_fault(child, profile_name)
    else:
        problems += [f"Body: {v}" for v in validate_request(child, profile_name)]
    return problems


def _check_fault(fault: etree._Element, profile_name: str | None) -> list[str]:
    problems: list[str] = []
    names = [c.tag for c in fault]
    if names[:2] != ["faultcode", "faultstring"]:
        problems.append(f"Fault: children must start with faultcode, faultstring (got {names})")
    code_el = fault.find("faultcode")
    code = (code_el.text or "") if code_el is not None else ""
    prefix, _, local = code.partition(":")
    if code_el is None or not local or code_el.nsmap.get(prefix) not in (T, S):
        problems.append(f"Fault: faultcode {code!r} is not a QName in the types (or SOAP) namespace")
    detail = fault.find("detail")
    if detail is not None:
        tags = [c.tag for c in detail]
        unknown = [tg for tg in tags if tg not in _FAULT_DETAIL]
        if unknown:
            problems.append(f"Fault detail: unexpected elements {unknown}")
        rc = detail.find(f"{{{E}}}ResponseCode")
        if rc is None or not (rc.text or "").strip():
            problems.append("Fault detail: e:ResponseCode missing")
        elif local and S not in (code_el.nsmap.get(prefix),) and rc.text.strip() != local:
            problems.append(f"Fault detail: e:ResponseCode {rc.text!r} differs from faultcode {code!r}")
        if detail.find(f"{{{E}}}Message") is None:
            problems.append("Fault detail: e:Message missing")
        mx = detail.find(f"{{{T}}}MessageXml")
        if mx is not None:
            allowed = {f"{{{T}}}{n}" for n in ("LineNumber", "LinePosition", "Violation", "Value")}
            bad = [c.tag for c in mx if c.tag not in allowed]
            if bad:
                problems.append(f"Fault detail: unexpected t:MessageXml children {bad}")
            for c in mx:
                if c.tag in (f"{{{T}}}LineNumber", f"{{{T}}}LinePosition") and not (c.text or "").strip().isdigit():
                    problems.append(f"Fault detail: {etree.QName(c).localname} is not a number: {c.text!r}")
                if c.tag == f"{{{T}}}Value" and not c.get("Name"):
                    problems.append("Fault detail: t:Value without Name")
    return problems
