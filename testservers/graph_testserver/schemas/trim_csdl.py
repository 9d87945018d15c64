"""Cut the part of Microsoft Graph's v1.0 CSDL the Graph test server serves out of the full document.

    .venv/bin/python testservers/graph_testserver/schemas/trim_csdl.py /work/shared/protocol/graph/cleanMetadata-v1.0.xml

writes ``testservers/graph_testserver/schemas/graph-v1.0-mail.xml`` (next to this script). The source is
microsoftgraph/msgraph-metadata ``clean_v10_metadata/cleanMetadata-v1.0.xml`` at the commit in ``COMMIT``
(MIT, ``LICENSE``). Kept, unchanged apart from dropping ``<Annotation>`` elements (documentation and
capability records, not structure):

- the entity types the server returns (``ROOTS``) and every type derived from them (a response may claim a
  derived type through ``@odata.type``, e.g. ``eventMessage``);
- the closure over base types and structural property types (complex and enum types);
- navigation properties as declared (name and type); their target entity types are followed only when
  they are roots, so ``users('x')/mailFolders('y')/messages`` resolves while e.g. ``user/calendar`` stays a
  declared name whose contents are not checked;
- from the entity container the entity sets and singletons whose type is a root (``users``, ``me``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lxml import etree

EDM = "http://docs.oasis-open.org/odata/ns/edm"
EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
ROOTS = ("microsoft.graph.user", "microsoft.graph.mailFolder", "microsoft.graph.message")
KINDS = ("EntityType", "ComplexType", "EnumType")
OUT = Path(__file__).with_name("graph-v1.0-mail.xml")


def _q(tag: str) -> str:
    return f"{{{EDM}}}{tag}"


def main(source: str) -> int:
    tree = etree.parse(source)
    root = tree.getroot()
    schemas = root.findall(f".//{_q('Schema')}")
    aliases: dict[str, str] = {}
    types: dict[str, etree._Element] = {}
    for schema in schemas:
        ns = schema.get("Namespace")
        if schema.get("Alias"):
            aliases[schema.get("Alias")] = ns
        for kind in KINDS:
            for el in schema.findall(_q(kind)):
                types[f"{ns}.{el.get('Name')}"] = el

    def full(name: str | None) -> str | None:
        if not name:
            return None
        if name.startswith("Collection(") and name.endswith(")"):
            name = name[len("Collection("):-1]
        ns, _, local = name.rpartition(".")
        return f"{aliases.get(ns, ns)}.{local}"

    derived: dict[str, list[str]] = {}
    for qname, el in types.items():
        base = full(el.get("BaseType"))
        if base:
            derived.setdefault(base, []).append(qname)

    keep: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep or name not in types:
            continue
        keep.add(name)
        el = types[name]
        base = full(el.get("BaseType"))
        if base:
            todo.append(base)
        if any(_derives(name, r, types, full) for r in ROOTS):  # a response may claim a derived type
            todo.extend(derived.get(name, []))
        for prop in el.findall(_q("Property")):
            todo.append(full(prop.get("Type")))
        for nav in el.findall(_q("NavigationProperty")):
            target = full(nav.get("Type"))
            if target in ROOTS:
                todo.append(target)
    out_root = etree.Element(f"{{{EDMX}}}Edmx", nsmap={"edmx": EDMX}, Version="4.0")
    services = etree.SubElement(out_root, f"{{{EDMX}}}DataServices")
    for schema in schemas:
        ns = schema.get("Namespace")
        kept = [el for el in schema if el.tag in {_q(k) for k in KINDS} and f"{ns}.{el.get('Name')}" in keep]
        container = schema.find(_q("EntityContainer"))
        if not kept and container is None:
            continue
        attrs = {"Namespace": ns}
        if schema.get("Alias"):
            attrs["Alias"] = schema.get("Alias")
        new = etree.SubElement(services, _q("Schema"), attrs, nsmap={None: EDM})
        for el in kept:
            copy = etree.fromstring(etree.tostring(el))
            for ann in copy.findall(f".//{_q('Annotation')}"):
                ann.getparent().remove(ann)
            new.append(copy)
        if container is not None:
            box = etree.SubElement(new, _q("EntityContainer"), {"Name": container.get("Name")})
            for el in container:
                if el.tag == _q("EntitySet") and full(el.get("EntityType")) in ROOTS:
                    etree.SubElement(box, _q("EntitySet"), {"Name": el.get("Name"), "EntityType": el.get("EntityType")})
                elif el.tag == _q("Singleton") and full(el.get("Type")) in ROOTS:
                    etree.SubElement(box, _q("Singleton"), {"Name": el.get("Name"), "Type": el.get("Type")})
    etree.indent(out_root, space="  ")
    OUT.write_bytes(etree.tostring(out_root, xml_declaration=True, encoding="utf-8") + b"\n")
    print(f"{OUT}: {len(keep)} types, {OUT.stat().st_size} bytes")
    return 0


def _derives(name: str, root: str, types: dict, full) -> bool:
    seen = 0
    while name and seen < 50:
        if name == root:
            return True
        el = types.get(name)
        name = full(el.get("BaseType")) if el is not None else None
        seen += 1
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/protocol/graph/cleanMetadata-v1.0.xml"))
