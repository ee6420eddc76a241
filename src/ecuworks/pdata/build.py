"""``ecuworks pdata build SPEC_DIR OUT_DIR``: a signed repository from a spec and image files.

A spec directory holds one TOML file per series (every ``*.toml`` but ``pdata.toml``) and
the image files they name; ``pdata.toml``, if present, sets repository-wide options::

    # pdata.toml (optional)
    [expires_days]          # lifetime per role; defaults as RepositoryBuilder's
    timestamp = 1
    [thresholds]            # signatures required per role (default 1)
    root = 2

    # F030.toml: the catalog of one series, as in catalog.json, except [[units]]
    series = "F030"
    [[ilevels]]
    ilevel = "F030-24-03-550"
    date = 2024-03-15
    targets = [{variant = "DME_F030", hardware = "HWEL-...", units = [{sgbm = "SWFL-..."}]}]
    [[ecus]]                # ECU metadata: address, name, variant, bus, regions, coding ...
    [[buses]]               # optional: the buses the ECUs name, for the plan's estimates
    name = "pt-can"
    kind = "can"                    # ethernet, can, canfd (give data_bitrate), flexray
    bitrate = 500_000
    [[units]]
    sgbm = "SWFL-000012A0-003.002.001"
    image = "images/dme.hex"        # Intel HEX, S-record or raw binary (bincopy)
    format = "auto"                 # or ihex, srec, binary
    base_address = 0x0              # where a raw binary starts
    address = 0x0100_0000           # download address; default the image's lowest address
    compress = "zlib"               # also publish a compressed form
    [[units]]
    sgbm = "SWFL-000012A1-001.000.000"
    pdx = "odx/dme.pdx"             # ODX-F in a PDX container (odxtools)
    datablock = "DB_APP"            # which DATABLOCK, if the PDX has several

Each unit becomes an ``EWU1`` image (DESIGN.md): the 64-byte header, then the payload, the
imported data in address order with any gaps between its segments filled with 0xFF (erased
flash), downloaded to ``address`` in one piece. Images are streamed twice (hash, then copy)
and never held whole in memory. A unit's compatible hardware (its target ``custom`` field)
is every HWEL whose target SVK lists it.

The catalog is checked before anything is signed: every field as ``catalog.json`` demands,
and every flashable unit a target SVK names must have a ``[[units]]`` entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import tempfile
import tomllib
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from ecuworks.errors import ConfigError, ParseError
from ecuworks.pdata.importers import ImportedImage, load_image, load_pdx
from ecuworks.pdata.keys import TOP_LEVEL_ROLES, KeyRing
from ecuworks.pdata.model import SCHEMA, CompressedForm, Segment, SeriesCatalog, UnitInfo
from ecuworks.pdata.repository import RepositoryBuilder
from ecuworks.pdata.source import CATALOG_PATH
from ecuworks.wire.sgbm import ProcessClass, SgbmId
from ecuworks.wire.unit_image import HEADER_SIZE, UnitHeader

__all__ = ["MAX_GAP", "BuildResult", "build_repository", "spec_series"]

MAX_GAP: Final = 16 * 1024 * 1024
"""The most 0xFF fill a unit may need between its segments; more is two units."""

_CHUNK: Final = 1 << 16
_ERASED: Final = b"\xff" * _CHUNK
_OPTIONS = "pdata.toml"
_UNIT_KEYS = frozenset(
    {"sgbm", "image", "format", "base_address", "address", "compress", "release", "pdx",
     "datablock"}
)  # fmt: skip
_NOT_FLASHED = (ProcessClass.HWEL, ProcessClass.CAFD)

Progress = Callable[[str], None]
"""Told the SGBM-ID of each unit as its image is written."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildResult:
    """What :func:`build_repository` published.

    Attributes:
        repo_dir: the repository directory (serve it as static files).
        root_path: its first root, what a workshop pins.
        series: the series built, with their unit counts.
        image_bytes: bytes of the unit images written.
        snapshot_version: the version just published.
    """

    repo_dir: Path
    root_path: Path
    series: Mapping[str, int]
    image_bytes: int
    snapshot_version: int


def build_repository(
    spec_dir: Path,
    out_dir: Path,
    keys: KeyRing,
    *,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Import the images of a spec directory and publish them, signed, into ``out_dir``.

    If ``out_dir`` holds a repository already, this publishes its next release: changed
    roles get new versions, snapshot and timestamp always do (sign with the same keys).

    Args:
        spec_dir: the spec (layout: module docstring).
        out_dir: the repository directory.
        keys: signing keys of the top-level roles and of every series.
        now: the publishing time (tests pin it); default now.
        progress: told each unit as it is imported.

    Raises:
        ConfigError: the spec is invalid; the message names the file and field.
        ParseError: an image file is malformed; the message names the file and line.
    """
    options = _options(spec_dir)
    specs = _series_specs(spec_dir)
    for _, spec in specs:
        for role in (*TOP_LEVEL_ROLES, spec["series"]):
            keys.for_role(role)  # every key before the first byte is written
    builder = RepositoryBuilder(out_dir, keys, now=now, **options)
    series: dict[str, int] = {}
    image_bytes = 0
    for path, spec in specs:
        catalog, written = _build_series(builder, path, spec, progress)
        series[catalog.series] = len(catalog.units)
        image_bytes += written
    builder.publish()
    snapshot = max(int(p.name.split(".")[0]) for p in Path(out_dir).glob("*.snapshot.json"))
    return BuildResult(
        repo_dir=Path(out_dir),
        root_path=Path(out_dir) / "1.root.json",
        series=series,
        image_bytes=image_bytes,
        snapshot_version=snapshot,
    )


def spec_series(spec_dir: Path) -> list[str]:
    """The series a spec directory builds (what signing keys it needs besides the top-level).

    Raises:
        ConfigError: no series spec, or one without a ``series`` name.
    """
    return [spec["series"] for _, spec in _series_specs(spec_dir)]


def _series_specs(spec_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    files = sorted(p for p in Path(spec_dir).glob("*.toml") if p.name != _OPTIONS)
    if not files:
        raise ConfigError(f"{spec_dir} holds no series spec (*.toml besides {_OPTIONS})")
    specs = [(p, _read_toml(p)) for p in files]
    for path, spec in specs:
        if not isinstance(spec.get("series"), str):
            raise ConfigError(f'{path}: series: required, a text like "F030"')
    return specs


def _options(spec_dir: Path) -> dict[str, Any]:
    """``pdata.toml``: expiry and thresholds for RepositoryBuilder."""
    path = Path(spec_dir) / _OPTIONS
    if not Path(spec_dir).is_dir():
        raise ConfigError(f"{spec_dir} is not a directory; give the P-Data spec directory")
    if not path.is_file():
        return {}
    data = _read_toml(path)
    unknown = set(data) - {"expires_days", "thresholds"}
    if unknown:
        raise ConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    expires = {}
    for role, days in _table(data, "expires_days", path).items():
        if not isinstance(days, int | float) or isinstance(days, bool) or days <= 0:
            raise ConfigError(f"{path}: expires_days.{role}: a positive number of days")
        expires[role] = timedelta(days=days)
    thresholds = {}
    for role, count in _table(data, "thresholds", path).items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(f"{path}: thresholds.{role}: a whole number of at least 1")
        thresholds[role] = count
    return {"expires": expires, "thresholds": thresholds}


def _table(data: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {key} must be a table")
    return table


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


# -- one series --------------------------------------------------------------------------


def _build_series(
    builder: RepositoryBuilder, path: Path, spec: dict[str, Any], progress: Progress | None
) -> tuple[SeriesCatalog, int]:
    """Check the catalog, import and write every unit, then the catalog itself."""
    where = str(path)
    unit_specs = spec.get("units", [])
    if not isinstance(unit_specs, list):
        raise ConfigError(f"{where}: units must be an array of tables ([[units]])")
    # Check everything but the images first, with placeholder units, so a typo in the
    # catalog costs nothing of an hour's import.
    placeholders = [_placeholder(u, f"{where}: units[{i}]") for i, u in enumerate(unit_specs)]
    draft = SeriesCatalog.from_json(_catalog_json(spec, placeholders), where)
    _check_units_listed(draft, where)
    hardware = _hardware_of(draft)
    infos = []
    written = 0
    for i, unit_spec in enumerate(unit_specs):
        if progress is not None:
            progress(str(unit_spec["sgbm"]))
        info = _add_unit(
            builder,
            draft.series,
            unit_spec,
            base=path.parent,
            where=f"{where}: units[{i}]",
            hardware=hardware,
        )
        infos.append(info.to_json())
        written += info.size
    catalog = SeriesCatalog.from_json(_catalog_json(spec, infos), where)
    release = max((int(u.get("release", 1)) for u in unit_specs), default=1)
    builder.add_target(
        catalog.series,
        CATALOG_PATH,
        catalog.to_bytes(),
        custom={"kind": "catalog", "schema": SCHEMA, "release": release},
    )
    return catalog, written


def _catalog_json(spec: Mapping[str, Any], units: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec in ``catalog.json``'s form: TOML dates as text, the units given."""
    data = {k: _plain(v) for k, v in spec.items() if k != "units"}
    data.setdefault("schema", SCHEMA)
    data.setdefault("size_scale", 1.0)
    data["units"] = units
    return data


def _plain(value: Any) -> Any:
    """TOML values as JSON ones (dates become ISO text)."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _placeholder(unit: object, where: str) -> dict[str, Any]:
    """A unit spec checked and given a stand-in image, to validate the catalog early."""
    if not isinstance(unit, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(unit) - _UNIT_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    if not isinstance(unit.get("sgbm"), str):
        raise ConfigError(f"{where}.sgbm: required, an SGBM-ID like SWFL-000012A0-003.002.001")
    if ("image" in unit) == ("pdx" in unit):
        raise ConfigError(f"{where}: give either image = FILE or pdx = FILE")
    for key in ("image", "pdx", "datablock"):
        if key in unit and not isinstance(unit[key], str):
            raise ConfigError(f"{where}.{key}: a text")
    for key, top in (("base_address", 0xFFFF_FFFF), ("address", 0xFFFF_FFFF), ("release", 2**31)):
        value = unit.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise ConfigError(f"{where}.{key}: a whole number from 0 to {top}")
    if unit.get("format", "auto") not in ("auto", "ihex", "srec", "binary"):
        raise ConfigError(f"{where}.format: one of auto, ihex, srec, binary")
    if unit.get("compress", "zlib") != "zlib":
        raise ConfigError(f'{where}.compress: {unit["compress"]!r} is not offered; use "zlib"')
    sgbm = unit["sgbm"]
    return {
        "sgbm": sgbm,
        "path": f"units/{sgbm}.bin",
        "size": HEADER_SIZE + 1,
        "sha256": "0" * 64,
        "segments": [{"address": 0, "offset": 0, "length": HEADER_SIZE + 1}],
    }


def _check_units_listed(catalog: SeriesCatalog, where: str) -> None:
    """Every flashable unit a target SVK names needs an image."""
    have = {u.sgbm for u in catalog.units}
    for i, release in enumerate(catalog.ilevels):
        for j, target in enumerate(release.targets):
            for entry in target.units:
                unit = SgbmId.parse(entry.sgbm)
                if unit.process_class not in _NOT_FLASHED and entry.sgbm not in have:
                    raise ConfigError(
                        f"{where}: ilevels[{i}].targets[{j}]: {entry.sgbm} has no [[units]] "
                        "entry with its image"
                    )


def _hardware_of(catalog: SeriesCatalog) -> dict[str, list[str]]:
    """SGBM-ID -> the HWELs whose target SVK lists it, sorted."""
    found: dict[str, set[str]] = {}
    for release in catalog.ilevels:
        for target in release.targets:
            for entry in target.units:
                found.setdefault(entry.sgbm, set()).add(target.hardware)
    return {sgbm: sorted(hw) for sgbm, hw in found.items()}


# -- one unit ----------------------------------------------------------------------------


def _add_unit(
    builder: RepositoryBuilder,
    series: str,
    spec: Mapping[str, Any],
    *,
    base: Path,
    where: str,
    hardware: Mapping[str, list[str]],
) -> UnitInfo:
    """Import one unit's image, write its EWU1 image (and compressed form), describe it."""
    unit = SgbmId.parse(spec["sgbm"])
    image = _import(base, spec, where)
    lowest = image.segments[0].address
    address = int(spec.get("address", lowest))
    gaps = _gap_bytes(image)
    if gaps > MAX_GAP:
        raise ConfigError(
            f"{where}: {image.source} has {gaps} bytes of gaps between its segments "
            f"(at most {MAX_GAP}); make each far-apart segment a unit of its own"
        )
    length = image.total_size + gaps
    digest = hashlib.sha256()
    for chunk in _payload(image):
        digest.update(chunk)
    header = UnitHeader(sgbm=unit, payload_length=length, payload_sha256=digest.digest())
    custom = {
        "sgbm": str(unit),
        "process_class": unit.process_class.name,
        "hardware": hardware.get(str(unit), []),
        "release": int(spec.get("release", 1)),
    }
    path = f"units/{unit}.bin"
    target = builder.add_target(
        series, path, itertools.chain((header.encode(),), _payload(image)), custom=custom
    )
    size = HEADER_SIZE + length
    compressed = None
    if "compress" in spec:
        compressed = _add_compressed(
            builder, series, path, header=header, image=image, custom=custom
        )
    return UnitInfo(
        sgbm=str(unit),
        path=path,
        size=size,
        sha256=target.hashes["sha256"],
        segments=(Segment(address=address, offset=0, length=size),),
        compressed=compressed,
    )


def _import(base: Path, spec: Mapping[str, Any], where: str) -> ImportedImage:
    """Load the unit's image file or its DATABLOCK in a PDX."""
    try:
        if "image" in spec:
            return load_image(
                base / str(spec["image"]),
                format=spec.get("format", "auto"),
                base_address=int(spec.get("base_address", 0)),
            )
        blocks = load_pdx(base / str(spec["pdx"]))
    except ParseError as exc:
        raise ParseError(f"{where}: {exc}") from exc
    wanted = spec.get("datablock")
    chosen = [b for b in blocks if wanted is None or b.name == wanted]
    names = ", ".join(b.name for b in blocks) or "none"
    if len(chosen) != 1:
        what = f"no DATABLOCK {wanted!r}" if wanted else "several DATABLOCKs"
        raise ConfigError(f"{where}: {spec['pdx']} has {what} (has: {names}); set datablock")
    return chosen[0].image()


def _gap_bytes(image: ImportedImage) -> int:
    return sum(b.address - a.end for a, b in itertools.pairwise(image.segments))


def _payload(image: ImportedImage) -> Iterator[bytes]:
    """The imported data in address order, gaps filled with 0xFF."""
    end = None
    for segment in image.segments:
        gap = 0 if end is None else segment.address - end
        while gap > 0:
            yield _ERASED[: min(gap, _CHUNK)]
            gap -= _CHUNK
        yield from segment.iter_chunks(_CHUNK)
        end = segment.end


def _add_compressed(
    builder: RepositoryBuilder,
    series: str,
    path: str,
    *,
    header: UnitHeader,
    image: ImportedImage,
    custom: Mapping[str, Any],
) -> CompressedForm:
    """Write the image zlib-compressed (one stream, as the bootloader inflates it)."""
    fd, tmp = tempfile.mkstemp(prefix=".ecuworks-zlib.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            packer = zlib.compressobj(9)
            for chunk in itertools.chain((header.encode(),), _payload(image)):
                out.write(packer.compress(chunk))
            out.write(packer.flush())
        target = builder.add_target(
            series, f"{path}.zlib", tmp, custom={**custom, "compressed": "zlib"}
        )
    finally:
        Path(tmp).unlink(missing_ok=True)
    return CompressedForm(
        path=f"{path}.zlib", method="zlib", size=target.length, sha256=target.hashes["sha256"]
    )
