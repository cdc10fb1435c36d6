"""Resolved identities of cell lines and perturbagens across sources (the ``harmonize`` step).

Every source name of a data set gets a canonical name and, when one is known, a namespaced identifier. The
evidence is used in this order (see ``docs/harmonization.md``):

1. identifiers the source carries (``cell_line_id`` / ``perturbagen_id`` filled by its reader, e.g. GDSC's
   ``COSMIC:905949`` and ``GDSC_DRUG:1003``), translated to Cellosaurus accessions when a Cellosaurus file
   lists them;
2. the user's identity table (``kind, name, canonical, id``);
3. Cellosaurus (when given): a name that is an accession, or a name / synonym of exactly one accession;
   names that are DepMap ids (``ACH-000681``);
4. conservative normalization: case, spaces, hyphens and punctuation ignored; drug salt and hydrate suffixes
   and CCLE tissue suffixes removed.

Names linked by a shared normalized key or a shared identifier form one group. A group whose evidence points to
two identifiers of one namespace (or two user canonical names) is *ambiguous*: nothing in it is merged. Similar
names that are different entities (``HeLa`` / ``HeLa S3``, a drug and its enantiomer) are never merged, only
listed as near misses. All work is done on the distinct names (pandas string operations), then mapped onto the
tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from doseatlas import schemas as S
from doseatlas._codes import combine, factorize

K = S.IdentityKind
RULE = S.IdentityRule
CONFLICT = S.IdentityConflict

#: CCLE name suffixes (``<NAME>_<TISSUE>``, as in CCLE's and DepMap's ``CCLE_Name``)
CCLE_TISSUES: tuple[str, ...] = (
    "ADRENAL_CORTEX", "AUTONOMIC_GANGLIA", "BILIARY_TRACT", "BONE", "BREAST", "CENTRAL_NERVOUS_SYSTEM",
    "CERVIX", "ENDOMETRIUM", "ENGINEERED", "EYE", "FIBROBLAST", "HAEMATOPOIETIC_AND_LYMPHOID_TISSUE", "KIDNEY",
    "LARGE_INTESTINE", "LIVER", "LUNG", "MATCHED_NORMAL_TISSUE", "OESOPHAGUS", "OVARY", "PANCREAS", "PLACENTA",
    "PLEURA", "PRIMARY", "PROSTATE", "SALIVARY_GLAND", "SKIN", "SMALL_INTESTINE", "SOFT_TISSUE", "STOMACH",
    "TESTIS", "THYROID", "UPPER_AERODIGESTIVE_TRACT", "URINARY_TRACT", "UTERUS", "VULVA",
)  # fmt: skip
#: salt, counter-ion and hydrate words removed from the end of a drug name (with an optional multiplier prefix)
SALT_SUFFIXES: tuple[str, ...] = (
    "hydrochloride", "hcl", "hydrobromide", "hbr", "mesylate", "mesilate", "methanesulfonate", "besylate",
    "besilate", "tosylate", "maleate", "fumarate", "succinate", "tartrate", "bitartrate", "citrate", "phosphate",
    "sulfate", "sulphate", "acetate", "sodium", "potassium", "calcium", "magnesium", "lactate", "malate",
    "trifluoroacetate", "tfa", "hydrate", "salt",
)  # fmt: skip
_CCLE = r"^(?P<base>.+?)_(?:" + "|".join(CCLE_TISSUES) + r")$"
_SALT_UNIT = (
    r"(?:[\s,;/_-]+\(?|\s*\()\s*(?:mono|di|tri|tetra|hemi|sesqui|bis)?(?:"
    + "|".join(SALT_SUFFIXES)
    + r")\s*\)?"
)
_SALT = r"(?i)^(?P<base>.*?[^\s,;/_(-])(?:" + _SALT_UNIT + r")+\s*$"
#: stereo descriptors and prefixes set aside only to *list* near misses (never to merge)
_STEREO = r"^(?:\(\s*(?:[rs]|[+-]|±|\+/-|rac|r,s|rs|d|l|dl)\s*\)\s*-?|(?:rac|[rsdl])-|levo|dextro|dex|es|ar)"
_DEPMAP = r"^ACH-\d{6}$"
_CVCL = r"^CVCL_[A-Z0-9]{4}$"
#: preferred namespace of the canonical id of a group (lower first); others after, by name
_NAMESPACE_RANK = {"CVCL": 0, "DEPMAP": 1, "COSMIC": 2, "PUBCHEM": 0, "CHEMBL": 1}


@dataclass(frozen=True)
class UserIdentity:
    """One row of the user's identity table (``--identities FILE.csv``)."""

    kind: str
    name: str
    canonical: str
    id: str | None = None


@dataclass(frozen=True)
class CellosaurusRecord:
    """One Cellosaurus entry: accession (``AC``), recommended name (``ID``), synonyms (``SY``) and the
    cross-references used here (``DR`` lines of Cosmic-CLP and DepMap, as ``COSMIC:<id>``, ``DEPMAP:<id>``)."""

    accession: str
    name: str
    synonyms: tuple[str, ...] = ()
    xrefs: tuple[str, ...] = ()


@dataclass(frozen=True)
class HarmonizeOptions:
    """Options of the ``harmonize`` step: the user's identity table and the parsed Cellosaurus records
    (both optional), and the files they came from (recorded in the provenance)."""

    identities: tuple[UserIdentity, ...] = ()
    cellosaurus: tuple[CellosaurusRecord, ...] = ()
    files: tuple[str, ...] = field(default=())

    def as_record(self) -> dict[str, Any]:
        """A short record for the provenance (not the Cellosaurus records themselves)."""
        return {
            "identities_rows": len(self.identities),
            "cellosaurus_records": len(self.cellosaurus),
            "files": list(self.files),
        }


# ------------------------------------------------------------------------------------------ name keys
def normalized_key(names: pd.Series) -> pd.Series:
    """Case, spaces, hyphens and punctuation ignored (``A-549`` == ``A549`` == ``a549``); optical-rotation
    signs are kept as words (``(+)`` -> ``plus``, ``(-)`` -> ``minus``) so that enantiomers stay apart."""
    text = names.astype(str).str.normalize("NFKC").str.casefold()
    text = text.str.replace(r"\(\s*(?:\+/-|±|\+-)\s*\)", "rac", regex=True)
    text = text.str.replace(r"\(\s*\+\s*\)", "plus", regex=True).str.replace(
        r"\(\s*-\s*\)", "minus", regex=True
    )
    return text.str.replace(r"[\W_]+", "", regex=True)


def _strip(names: pd.Series, pattern: str) -> pd.Series:
    """The ``base`` group of ``pattern`` where it matches, else NaN."""
    return names.str.extract(pattern, expand=True)["base"] if len(names) else names.copy()


def name_keys(names: pd.DataFrame) -> pd.DataFrame:
    """``base`` (the spelling after a CCLE suffix (cell lines) or salt suffixes (drugs) are removed), the rule
    that removed it, and the normalized ``key`` of the base (genetic perturbagens: the name as given)."""
    out = names.copy()
    name = out[S.SOURCE_NAME].astype(str)
    line = (out[S.IDENTITY_KIND] == K.CELL_LINE).to_numpy()
    drug = (out[S.PERTURBATION_TYPE] == S.PerturbationType.DRUG).to_numpy()
    ccle = _strip(name, _CCLE).where(line)
    salt = _strip(name, _SALT).where(drug)
    out["base"] = ccle.fillna(salt).fillna(name)
    out["strip_rule"] = np.where(
        ccle.notna(), RULE.CCLE_SUFFIX.value, np.where(salt.notna(), RULE.SALT_SUFFIX.value, None)
    )
    key = normalized_key(out["base"])
    keep = ~line & ~drug | key.eq("").to_numpy()  # genetic perturbagens, and names of punctuation only
    out["key"] = key.where(~keep, out["base"])
    return out


def _scope(frame: pd.DataFrame) -> pd.Series:
    return frame[S.IDENTITY_KIND].astype(str) + "\x1f" + frame[S.PERTURBATION_TYPE].astype(str)


# ------------------------------------------------------------------------------------------ evidence
def _user_evidence(frame: pd.DataFrame, user: tuple[UserIdentity, ...]) -> pd.DataFrame:
    """Columns ``user_canonical`` and ``user_id`` from the user's table (exact name, per kind)."""
    table = pd.DataFrame(
        [(u.kind, u.name, u.canonical, u.id) for u in user],
        columns=[S.IDENTITY_KIND, S.SOURCE_NAME, "user_canonical", "user_id"],
        dtype=object,
    ).drop_duplicates([S.IDENTITY_KIND, S.SOURCE_NAME])
    return frame.merge(table, on=[S.IDENTITY_KIND, S.SOURCE_NAME], how="left")


def cellosaurus_lookup(records: tuple[CellosaurusRecord, ...]) -> tuple[pd.DataFrame, pd.Series]:
    """(normalized name or synonym -> accession, with ``n_accessions``; cross-reference -> accession)."""
    rows = pd.DataFrame(
        {"accession": [r.accession for r in records], "names": [(r.name, *r.synonyms) for r in records],
         "xrefs": [r.xrefs for r in records]}
    )  # fmt: skip
    names = rows[["accession", "names"]].explode("names").dropna()
    names["key"] = normalized_key(names["names"])
    names = names.drop_duplicates(["key", "accession"])
    names["n_accessions"] = names.groupby("key")["accession"].transform("size")
    names = names.drop_duplicates("key").set_index("key")[["accession", "n_accessions"]]
    xrefs = rows[["accession", "xrefs"]].explode("xrefs").dropna().drop_duplicates("xrefs", keep=False)
    return names, xrefs.set_index("xrefs")["accession"]


def _cellosaurus_evidence(frame: pd.DataFrame, records: tuple[CellosaurusRecord, ...]) -> pd.DataFrame:
    """Columns ``cvcl`` (accession), ``cvcl_rule`` and ``cvcl_ambiguous`` (the name is one of several
    accessions' names) for cell lines; the source's id is translated through the cross-references."""
    frame["cvcl"], frame["cvcl_rule"], frame["cvcl_ambiguous"] = None, None, False
    line = frame[S.IDENTITY_KIND] == K.CELL_LINE
    name = frame[S.SOURCE_NAME].astype(str)
    is_accession = line & name.str.match(_CVCL)
    frame.loc[is_accession, ["cvcl", "cvcl_rule"]] = np.c_[
        name[is_accession], [RULE.CELLOSAURUS_ACCESSION.value] * is_accession.sum()
    ]
    if not records:
        return frame
    names, xrefs = cellosaurus_lookup(records)
    depmap = ("DEPMAP:" + frame[S.SOURCE_NAME].astype(str)).where(
        frame[S.SOURCE_NAME].astype(str).str.match(_DEPMAP)
    )
    by_id = frame[S.SOURCE_ID].map(xrefs).where(line)
    by_name = depmap.map(xrefs).where(line & by_id.isna())
    for found, rule in ((by_id, RULE.SOURCE_ID), (by_name, RULE.DEPMAP_ID)):
        hit = found.notna()
        frame.loc[hit, "cvcl"], frame.loc[hit, "cvcl_rule"] = found[hit], rule.value
    found = (
        frame["key"]
        .map(names["accession"])
        .where(line & frame["cvcl"].isna() & frame["user_canonical"].isna())
    )
    several = frame["key"].map(names["n_accessions"]).gt(1) & found.notna()
    frame["cvcl_ambiguous"] = several
    single = found.notna() & ~several
    frame.loc[single, ["cvcl", "cvcl_rule"]] = np.c_[
        found[single], [RULE.CELLOSAURUS_NAME.value] * single.sum()
    ]
    return frame


def _direct_id(frame: pd.DataFrame) -> pd.DataFrame:
    """``direct_id`` and ``direct_rule``: the first identifier of the evidence order, per name."""
    depmap = frame[S.SOURCE_NAME].astype(str).str.match(_DEPMAP) & (frame[S.IDENTITY_KIND] == K.CELL_LINE)
    candidates = [
        (frame["cvcl"].where(frame["cvcl_rule"] == RULE.SOURCE_ID), RULE.SOURCE_ID),
        (frame[S.SOURCE_ID], RULE.SOURCE_ID),
        (frame["user_id"], RULE.USER_TABLE),
        (frame["cvcl"], None),
        (("DEPMAP:" + frame[S.SOURCE_NAME].astype(str)).where(depmap), RULE.DEPMAP_ID),
    ]
    frame["direct_id"], frame["direct_rule"] = None, None
    for ids, rule in candidates:
        take = frame["direct_id"].isna() & ids.notna()
        frame.loc[take, "direct_id"] = ids[take]
        frame.loc[take, "direct_rule"] = frame.loc[take, "cvcl_rule"] if rule is None else rule.value
    user = frame["user_canonical"].notna() & frame["direct_rule"].isna()
    frame.loc[user, "direct_rule"] = RULE.USER_TABLE.value
    return frame


# ------------------------------------------------------------------------------------------ groups
def _components(frame: pd.DataFrame) -> np.ndarray:
    """Group number of every name: names linked by a shared key or a shared identifier (within kind and
    perturbation type) are one group; ambiguous names stand alone."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(frame)
    alone = frame["cvcl_ambiguous"].to_numpy(dtype=bool)
    key = (_scope(frame) + "\x1f" + frame["key"].astype(str)).where(~alone)
    ident = (_scope(frame) + "\x1f" + frame["direct_id"].astype(str)).where(frame["direct_id"].notna())
    key_codes, keys = pd.factorize(key)
    id_codes, ids = pd.factorize(ident)
    rows = np.r_[np.flatnonzero(key_codes >= 0), np.flatnonzero(id_codes >= 0)]
    nodes = np.r_[n + key_codes[key_codes >= 0], n + len(keys) + id_codes[id_codes >= 0]]
    size = n + len(keys) + len(ids)
    graph = coo_matrix((np.ones(len(rows)), (rows, nodes)), shape=(size, size))
    return connected_components(graph, directed=False)[1][:n]


def _namespace(ids: pd.Series) -> pd.Series:
    text = ids.astype(str)
    return text.str.extract(r"^([^:]+):", expand=False).where(~text.str.match(_CVCL), "CVCL")


def _ambiguous_groups(frame: pd.DataFrame) -> pd.Series:
    """Groups whose evidence names two identifiers of one namespace or two user canonical names."""
    ids = frame.loc[frame["direct_id"].notna(), ["group", "direct_id"]].drop_duplicates()
    ids["ns"] = _namespace(ids["direct_id"]).fillna("")
    two_ids = ids.groupby(["group", "ns"]).size().gt(1).groupby(level="group").any()
    users = frame.loc[frame["user_canonical"].notna(), ["group", "user_canonical"]].drop_duplicates()
    two_users = users.groupby("group").size().gt(1)
    bad = set(two_ids[two_ids].index) | set(two_users[two_users].index)
    return frame["group"].isin(bad)


def _canonical_names(frame: pd.DataFrame, records: tuple[CellosaurusRecord, ...]) -> pd.Series:
    """Per group: the Cellosaurus name of its accession, else the user's canonical name, else the most
    frequent base spelling (number of data sets using it), ties broken by sort order."""
    spelled = frame.groupby(["group", "base"]).size().rename("n").reset_index()
    spelled = spelled.sort_values(["group", "n", "base"], ascending=[True, False, True], kind="stable")
    name = spelled.drop_duplicates("group").set_index("group")["base"]
    user = frame.dropna(subset=["user_canonical"]).sort_values("user_canonical").drop_duplicates("group")
    name.update(user.set_index("group")["user_canonical"])
    if records:
        cvcl_names = pd.Series({r.accession: r.name for r in records})
        known = frame.dropna(subset=["cvcl"]).sort_values("cvcl").drop_duplicates("group")
        name.update(known.set_index("group")["cvcl"].map(cvcl_names).dropna())
    return frame["group"].map(name)


def _canonical_ids(frame: pd.DataFrame) -> pd.Series:
    """Per group: its identifier of the preferred namespace (Cellosaurus, DepMap, COSMIC; PubChem, ChEMBL),
    others by name."""
    ids = frame.loc[frame["direct_id"].notna(), ["group", "direct_id"]].drop_duplicates()
    ids["rank"] = _namespace(ids["direct_id"]).map(_NAMESPACE_RANK).fillna(9)
    best = ids.sort_values(["group", "rank", "direct_id"], kind="stable").drop_duplicates("group")
    return frame["group"].map(best.set_index("group")["direct_id"])


# ------------------------------------------------------------------------------------------ conflicts
def _mark(frame: pd.DataFrame, mask: pd.Series, conflict: S.IdentityConflict, detail: pd.Series) -> None:
    """Record ``conflict`` on the rows of ``mask`` that have none yet."""
    mask = mask & frame[S.IDENTITY_CONFLICT].isna()
    frame.loc[mask, S.IDENTITY_CONFLICT] = conflict.value
    frame.loc[mask, S.IDENTITY_CONFLICT_DETAIL] = detail[mask]


def _names_of(frame: pd.DataFrame, by: list[str], mask: pd.Series) -> pd.Series:
    """For the rows of ``mask``: the distinct source names (and ids) of their ``by`` group, as text."""
    if not mask.any():
        return pd.Series("", index=frame.index, dtype=object)
    part = frame[mask]
    label = part[S.SOURCE_NAME].astype(str) + np.where(
        part["direct_id"].notna(), " (" + part["direct_id"].astype(str) + ")", ""
    )
    text = label.groupby([part[c] for c in by]).agg(lambda v: ", ".join(sorted(set(v))))
    return pd.Series(pd.MultiIndex.from_frame(part[by]).map(text) if len(by) > 1 else part[by[0]].map(text),
                     index=part.index).reindex(frame.index)  # fmt: skip


def _keep_apart(frame: pd.DataFrame, mask: pd.Series) -> None:
    """Rows of ``mask`` keep their own name and only their own identifier."""
    frame.loc[mask, S.CANONICAL_NAME] = frame.loc[mask, S.SOURCE_NAME]
    frame.loc[mask, S.CANONICAL_ID] = frame.loc[mask, "direct_id"]


def _same_dataset(frame: pd.DataFrame) -> None:
    """Several source names of one data set with one canonical name keep their own names (their curves were
    fitted apart; merging them would give one metric key twice). Repeated until no such pair is left."""
    scope = [S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.CANONICAL_NAME]
    for _ in range(5):
        several = frame.groupby(scope, dropna=False)[S.SOURCE_NAME].transform("nunique").gt(1)
        if not several.any():
            return
        detail = (
            "data set uses several names for one identity ("
            + _names_of(frame, scope, several)
            + "): kept apart"
        )
        _mark(frame, several, CONFLICT.SAME_DATASET, detail)
        _keep_apart(frame, several)


def _near_miss_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """(scope, key, other_group) pairs, both ways: a key that is another key of the same scope plus 1-3
    trailing characters starting with a letter (HeLa / HeLa S3, Nutlin-3 / Nutlin-3a), or two drug keys equal once a stereo prefix is
    set aside (omeprazole / esomeprazole, (R)-X / X, (+)-X / (-)-X)."""
    keys = pd.DataFrame({"scope": _scope(frame), "key": frame["key"].astype(str), "group": frame["group"]})
    shorter = [keys.assign(other=keys["key"].str[:-n], tail=keys["key"].str[-n:]) for n in (1, 2, 3)]
    pairs = pd.concat(shorter, ignore_index=True)
    # a qualifier starts with a letter (S3, a, ADR); a digit continues a number (CL1 / CL10 are not near misses)
    qualifier = pairs["tail"].str[0].str.isalpha() & (pairs["other"].str.len() >= 3)
    pairs = pairs[qualifier][["scope", "key", "other"]]
    drug = (frame[S.PERTURBATION_TYPE] == S.PerturbationType.DRUG).to_numpy()
    text = frame["base"].astype(str).str.normalize("NFKC").str.casefold().str.replace(_STEREO, "", regex=True)
    bare = keys.assign(bare=normalized_key(text))[drug][["scope", "key", "bare"]].drop_duplicates()
    stereo = bare.merge(bare.rename(columns={"key": "other"}), on=["scope", "bare"])
    stereo = stereo[(stereo["key"] != stereo["other"]) & (stereo["bare"].str.len() >= 3)]
    pairs = pd.concat([pairs, pairs.rename(columns={"key": "other", "other": "key"}), stereo[pairs.columns]])
    known = keys.drop_duplicates(["scope", "key"]).rename(columns={"key": "other", "group": "other_group"})
    return pairs.merge(known, on=["scope", "other"]).drop_duplicates()


def _near_misses(frame: pd.DataFrame) -> None:
    """List near misses (different groups only): never merged."""
    pairs = _near_miss_pairs(frame)
    if not len(pairs):
        return
    scope = _scope(frame)
    index = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "scope": scope.to_numpy(),
            "key": frame["key"].astype(str).to_numpy(),
            "group": frame["group"].to_numpy(),
        }
    )
    hits = index.merge(pairs[["scope", "key", "other_group"]], on=["scope", "key"])
    hits = hits[hits["group"] != hits["other_group"]]
    if not len(hits):
        return
    listed = frame[frame["group"].isin(hits["other_group"])]
    names = listed.groupby("group")[S.CANONICAL_NAME].agg(lambda v: " / ".join(sorted(set(map(str, v)))))
    hits["other_name"] = hits["other_group"].map(names)
    text = hits.groupby("row")["other_name"].agg(lambda v: ", ".join(sorted(set(map(str, v)))))
    detail = pd.Series(None, index=frame.index, dtype=object)
    detail.iloc[text.index.to_numpy()] = (
        "near miss of " + text + ": a different entity, kept apart"
    ).to_numpy()
    _mark(frame, detail.notna(), CONFLICT.NEAR_MISS, detail)


# ------------------------------------------------------------------------------------------ resolution
def _evidence(names: pd.DataFrame, options: HarmonizeOptions) -> pd.DataFrame:
    order = [S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME, S.SOURCE_ID]
    frame = name_keys(names.sort_values(order, kind="stable", na_position="last", ignore_index=True))
    frame = _user_evidence(frame, options.identities)
    frame["key"] = frame["key"].where(
        frame["user_canonical"].isna(), normalized_key(frame["user_canonical"].astype(str))
    )
    frame = _cellosaurus_evidence(frame, options.cellosaurus)
    frame = _direct_id(frame)
    frame["cvcl_ambiguous"] = frame["cvcl_ambiguous"] | frame["source_ids"].notna()
    return frame


def _rules(frame: pd.DataFrame) -> pd.Series:
    """The evidence that gave each name its identity (first applicable in the evidence order)."""
    stripped = frame["strip_rule"].where(frame["base"] != frame[S.SOURCE_NAME])
    renamed = pd.Series(np.where(frame[S.CANONICAL_NAME] != frame[S.SOURCE_NAME], RULE.NORMALIZED_NAME.value,
                                 RULE.AS_GIVEN.value), index=frame.index)  # fmt: skip
    return frame["direct_rule"].fillna(stripped).fillna(renamed)


def _conflicts(frame: pd.DataFrame) -> None:
    frame[S.IDENTITY_CONFLICT] = pd.Series(None, index=frame.index, dtype=object)
    frame[S.IDENTITY_CONFLICT_DETAIL] = pd.Series(None, index=frame.index, dtype=object)
    alone = frame["cvcl_ambiguous"]
    detail = pd.Series(
        np.where(frame["source_ids"].notna(), "the source gives several ids: " + frame["source_ids"].astype(str),
                 "a Cellosaurus name or synonym of several accessions"), index=frame.index)  # fmt: skip
    _mark(frame, alone, CONFLICT.AMBIGUOUS, detail)
    _keep_apart(frame, alone)
    ambiguous = _ambiguous_groups(frame) & ~alone
    text = "names of two identities linked (" + _names_of(frame, ["group"], ambiguous) + "): none merged"
    _mark(frame, ambiguous, CONFLICT.AMBIGUOUS, text)
    _keep_apart(frame, ambiguous)
    _same_dataset(frame)
    _near_misses(frame)


def resolve_identities(names: pd.DataFrame, *, options: HarmonizeOptions | None = None) -> pd.DataFrame:
    """The identities table of a run's distinct names.

    Parameters
    ----------
    names
        Distinct ``kind, dataset, perturbation_type, source_name, source_id`` (:func:`source_names`; the
        perturbation type is empty for cell lines, ``source_id`` null when the source carries none) and
        ``source_ids`` (the ids when the source gives several for one name, else null).
    options
        :class:`HarmonizeOptions` (user identity table, Cellosaurus records).

    Returns
    -------
    pandas.DataFrame
        :data:`doseatlas.schemas.IDENTITY_COLUMNS`, one row per input name, sorted by kind, data set,
        perturbation type and name.
    """
    options = options or HarmonizeOptions()
    if not len(names):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in S.IDENTITY_COLUMNS})
    frame = _evidence(names, options)
    frame["group"] = _components(frame)
    frame[S.CANONICAL_NAME] = _canonical_names(frame, options.cellosaurus).astype(object)
    frame[S.CANONICAL_ID] = _canonical_ids(frame).astype(object)
    for column in ("direct_id", S.SOURCE_NAME):
        frame[column] = frame[column].astype(object)
    _conflicts(frame)
    frame[S.IDENTITY_RULE] = _rules(frame)
    out = frame[list(S.IDENTITY_COLUMNS)].astype(object).where(frame[list(S.IDENTITY_COLUMNS)].notna(), None)
    order = [S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME]
    return out.sort_values(order, kind="stable", ignore_index=True)


# ------------------------------------------------------------------------------------------ the tables
def _column_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code of every row, value of each code) of one column, factorized once: the missing values share one
    code (the last), whose value is the first missing one as the column holds it."""
    array = values.to_numpy()
    codes, uniques = factorize(array)
    missing = codes < 0
    out = np.empty(len(uniques) + int(missing.any()), dtype=object)
    out[: len(uniques)] = np.asarray(uniques, dtype=object)
    if missing.any():
        out[-1] = array[np.argmax(missing)]
        codes = np.where(missing, len(uniques), codes)
    return codes.astype(np.int64, copy=False), out


@dataclass(frozen=True)
class _Names:
    """The names of one kind in one table: the distinct (dataset, perturbation type, name) combinations
    (``keys``, object columns; the perturbation type empty for cell lines), the combination of every row
    (``inverse``) and the distinct (combination, source id) pairs (``ids``: combination, id value)."""

    keys: pd.DataFrame
    inverse: np.ndarray
    ids: tuple[np.ndarray, np.ndarray] | None


def _names(
    table: pd.DataFrame, kind: S.IdentityKind, coded: dict[str, tuple[np.ndarray, np.ndarray]]
) -> _Names:
    """:class:`_Names` of one kind in ``table`` from its factorized columns (``coded``, filled as needed)."""

    def codes(column: str) -> tuple[np.ndarray, np.ndarray]:
        if column not in coded:
            coded[column] = _column_codes(table[column])
        return coded[column]

    name = S.CELL_LINE if kind == K.CELL_LINE else S.PERTURBAGEN
    columns = [S.DATASET, S.SOURCE_NAME]
    parts = [codes(S.DATASET), codes(name)]
    if kind == K.PERTURBAGEN and S.PERTURBATION_TYPE in table:
        columns.insert(1, S.PERTURBATION_TYPE)
        parts.insert(1, codes(S.PERTURBATION_TYPE))
    inverse, per_key = combine([(c, len(v)) for c, v in parts], len(table))
    keys = pd.DataFrame({c: v[k] for c, (_, v), k in zip(columns, parts, per_key, strict=True)})
    keys = keys.reindex(columns=[S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME], fill_value="")
    id_column = S.CELL_LINE_ID if kind == K.CELL_LINE else S.PERTURBAGEN_ID
    ids = None
    if id_column in table:
        id_codes, id_values = codes(id_column)
        _, (key, ident) = combine([(inverse, len(keys)), (id_codes, len(id_values))], len(table))
        ids = (key, id_values[ident])
    return _Names(keys=keys.astype(object), inverse=inverse, ids=ids)


def _distinct(names: _Names, kind: S.IdentityKind) -> pd.DataFrame:
    """Distinct (dataset, perturbation type, name, id) of one kind in a table (:class:`_Names`)."""
    if names.ids is None:
        frame = names.keys.reindex(columns=[S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME, S.SOURCE_ID])
    else:
        key, ids = names.ids
        frame = names.keys.take(key).reset_index(drop=True).assign(**{S.SOURCE_ID: ids})
    frame[S.PERTURBATION_TYPE] = frame[S.PERTURBATION_TYPE].fillna("")
    frame = frame.dropna(subset=[S.SOURCE_NAME])
    given = frame[S.SOURCE_ID].notna() & frame[S.SOURCE_ID].astype(str).ne("")
    frame[S.SOURCE_ID] = frame[S.SOURCE_ID].astype(object).where(given, None)
    frame = frame.drop_duplicates()
    frame.insert(0, S.IDENTITY_KIND, kind.value)
    return frame


def _table_names(table: pd.DataFrame) -> dict[S.IdentityKind, _Names]:
    """:class:`_Names` of each kind ``table`` has (its key columns factorized once for both kinds)."""
    present = {K.CELL_LINE: S.CELL_LINE, K.PERTURBAGEN: S.PERTURBAGEN}
    coded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    return {kind: _names(table, kind, coded) for kind, column in present.items() if column in table}


def source_names(*tables: pd.DataFrame) -> pd.DataFrame:
    """Distinct (kind, dataset, perturbation_type, source name, source id) of the tables' cell lines and
    perturbagens; a name for which its source gives several ids has them in ``source_ids`` (and no id)."""
    return _source_names([_table_names(t) if len(t) else {} for t in tables])


def _source_names(tables: list[dict[S.IdentityKind, _Names]]) -> pd.DataFrame:
    frames = [_distinct(names, kind) for table in tables for kind, names in table.items()]
    key = [S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME]
    if not frames:
        return pd.DataFrame(columns=[*key, S.SOURCE_ID, "source_ids"], dtype=object)
    names = pd.concat(frames, ignore_index=True).drop_duplicates()
    names = names.sort_values([*key, S.SOURCE_ID], kind="stable", na_position="last")
    with_id = names.dropna(subset=[S.SOURCE_ID])
    counts = with_id.groupby(key)[S.SOURCE_ID].nunique()
    several = with_id.merge(counts[counts > 1].rename("_n").reset_index(), on=key)  # only names with several
    several = several.groupby(key)[S.SOURCE_ID].agg(lambda v: ", ".join(sorted(set(v)))).rename("source_ids")
    if len(with_id):  # the text dtype pandas infers for the joined ids, also when no name has several
        several = several.astype("str")
    names = names.drop_duplicates(key).merge(several.reset_index(), on=key, how="left")
    names.loc[names["source_ids"].notna(), S.SOURCE_ID] = None
    return names.reset_index(drop=True)


def _lookup(names: _Names, identities: pd.DataFrame, kind: S.IdentityKind) -> tuple[pd.Series, pd.Series]:
    """(canonical name, canonical id) of every row of a table (looked up once per distinct name, then taken
    to the rows)."""
    key = [S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME]
    found = identities.loc[identities[S.IDENTITY_KIND] == kind, [*key, S.CANONICAL_NAME, S.CANONICAL_ID]]
    out = names.keys.merge(found, on=key, how="left", sort=False)
    name = out[S.CANONICAL_NAME].where(out[S.CANONICAL_NAME].notna(), out[S.SOURCE_NAME])
    return _taken(name.to_numpy(), names.inverse), _taken(out[S.CANONICAL_ID].to_numpy(), names.inverse)


def _taken(values: np.ndarray, inverse: np.ndarray) -> pd.Series:
    """``pd.Series(values[inverse])`` (values: one per distinct name): the column type pandas infers for the
    rows is inferred once on the distinct values (the same values, so the same type), whose array is then
    taken to the rows, instead of inferring and converting a Python object per row."""
    distinct = pd.Series(values)  # (the inference of a column made of these values)
    return pd.Series(distinct.array.take(inverse), dtype=distinct.dtype)


def apply_identities(table: pd.DataFrame, identities: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose ``cell_line`` / ``perturbagen`` are the canonical names, with the source's
    names in ``cell_line_source`` / ``perturbagen_source`` and the ids in ``cell_line_id`` / ``perturbagen_id``."""
    return _applied(table, _table_names(table), identities)


def _applied(
    table: pd.DataFrame, names: dict[S.IdentityKind, _Names], identities: pd.DataFrame
) -> pd.DataFrame:
    out = table.copy(deep=False)  # new columns only: the values of ``table`` are not written (copy on write)
    for kind, name, source, ident in ((K.CELL_LINE, S.CELL_LINE, S.CELL_LINE_SOURCE, S.CELL_LINE_ID),
                                      (K.PERTURBAGEN, S.PERTURBAGEN, S.PERTURBAGEN_SOURCE, S.PERTURBAGEN_ID)):  # fmt: skip
        if kind not in names:
            continue
        canonical, canonical_id = _lookup(names[kind], identities, kind)
        out[source] = out[name]
        out[name] = canonical.set_axis(out.index)
        out[ident] = canonical_id.set_axis(out.index)
    return out


def harmonize(
    responses: pd.DataFrame,
    curves: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    options: HarmonizeOptions | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``harmonize`` step: (responses, curves, metrics, identities) with canonical names and ids (each
    table's name columns factorized once, for its source names and for the mapping)."""
    tables = (responses, curves, metrics)
    names = [_table_names(t) for t in tables]
    identities = resolve_identities(_source_names([n if len(t) else {} for n, t in zip(names, tables, strict=True)]),
                                    options=options)  # fmt: skip
    return (*(_applied(t, n, identities) for t, n in zip(tables, names, strict=True)), identities)


def identity_summary(identities: pd.DataFrame) -> dict[str, int]:
    """Counts for the run summary: source names, canonical cell lines and perturbagens, conflicts."""
    kind = identities[S.IDENTITY_KIND]
    return {
        "source_names": len(identities),
        "cell_lines": int(identities.loc[kind == K.CELL_LINE, S.CANONICAL_NAME].nunique()),
        "perturbagens": int(identities.loc[kind == K.PERTURBAGEN, S.CANONICAL_NAME].nunique()),
        "conflicts": int(
            identities[S.IDENTITY_CONFLICT].isin([CONFLICT.AMBIGUOUS, CONFLICT.SAME_DATASET]).sum()
        ),
        "near_misses": int((identities[S.IDENTITY_CONFLICT] == CONFLICT.NEAR_MISS).sum()),
    }


def identity_notes(identities: pd.DataFrame) -> list[str]:
    """Warnings for the run summary (printed by the command line, shown in the report) when names were kept
    apart or near misses listed."""
    counts = identity_summary(identities)
    notes = []
    if counts["conflicts"]:
        notes.append(f"{counts['conflicts']} source names kept apart (ambiguous identity, or several names in one "
                     "data set): never merged; see identities.parquet and the report")  # fmt: skip
    if counts["near_misses"]:
        notes.append(f"{counts['near_misses']} source names are near misses of another (e.g. HeLa / HeLa S3): "
                     "kept apart and listed")  # fmt: skip
    return notes
