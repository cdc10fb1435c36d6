"""Identity resolution: each rule, the names never merged, the step in a run, and GDSCsmall vs CCLEsmall."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doseatlas import schemas as S
from doseatlas.harmonize import CellosaurusRecord, HarmonizeOptions, UserIdentity, resolve_identities
from doseatlas.harmonize.identities import normalized_key, source_names

from conftest import external_dir

CL, PG = S.IdentityKind.CELL_LINE.value, S.IdentityKind.PERTURBAGEN.value


def _names(*rows) -> pd.DataFrame:
    """Rows (kind, dataset, name[, source id]); perturbagens are drugs unless the kind is 'knockout'."""
    out = []
    for kind, dataset, name, *ident in rows:
        ptype = "" if kind == CL else ("knockout" if kind == "knockout" else "drug")
        out.append((CL if kind == CL else PG, dataset, ptype, name, ident[0] if ident else None))
    frame = pd.DataFrame(
        out, columns=[S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME, S.SOURCE_ID]
    )
    return frame.assign(source_ids=None)


def _resolve(*rows, **options) -> pd.DataFrame:
    return resolve_identities(_names(*rows), options=HarmonizeOptions(**options)).set_index(S.SOURCE_NAME)


def test_normalized_key_ignores_case_spaces_hyphens_and_punctuation_but_keeps_rotation_signs():
    keys = normalized_key(pd.Series(["A-549", "A549", "a549", "A 549", "A.549", "(+)-X", "(-)-X", "(±)-X"]))
    assert keys[:5].nunique() == 1
    assert keys[5:].nunique() == 3


def test_spellings_ccle_suffix_and_salts_give_one_identity():
    out = _resolve((CL, "a", "A-549"), (CL, "b", "A549_LUNG"), (CL, "c", "a549"), (CL, "b", "22RV1_PROSTATE"),
                   (CL, "a", "22Rv1"), (PG, "a", "dabrafenib mesylate"), (PG, "b", "Dabrafenib"),
                   (PG, "a", "erlotinib HCl"), (PG, "b", "Erlotinib hydrochloride hydrate"),
                   (PG, "c", "gemcitabine (hydrochloride)"), (PG, "a", "Gemcitabine"))  # fmt: skip
    assert out.loc[["A-549", "A549_LUNG", "a549"], S.CANONICAL_NAME].nunique() == 1
    assert out.loc["A549_LUNG", S.IDENTITY_RULE] == S.IdentityRule.CCLE_SUFFIX
    assert out.loc["a549", S.IDENTITY_RULE] == S.IdentityRule.NORMALIZED_NAME
    assert out.loc["22RV1_PROSTATE", S.CANONICAL_NAME] == out.loc["22Rv1", S.CANONICAL_NAME]
    assert set(out.loc[["dabrafenib mesylate", "Dabrafenib"], S.CANONICAL_NAME]) == {"Dabrafenib"}
    assert out.loc["dabrafenib mesylate", S.IDENTITY_RULE] == S.IdentityRule.SALT_SUFFIX
    assert out.loc[["erlotinib HCl", "Erlotinib hydrochloride hydrate"], S.CANONICAL_NAME].nunique() == 1
    assert out.loc[["gemcitabine (hydrochloride)", "Gemcitabine"], S.CANONICAL_NAME].nunique() == 1
    assert out[S.IDENTITY_CONFLICT].isna().all()


def test_canonical_name_is_the_most_frequent_spelling_then_sort_order_whatever_the_row_order():
    rows = [(CL, "a", "MCF-7"), (CL, "b", "MCF7"), (CL, "c", "MCF7"), (CL, "d", "mcf 7"), (CL, "e", "X-1"),
            (CL, "f", "x1")]  # fmt: skip
    out = _resolve(*rows)
    assert set(out.loc[["MCF-7", "MCF7", "mcf 7"], S.CANONICAL_NAME]) == {"MCF7"}  # used by two data sets
    assert set(out.loc[["X-1", "x1"], S.CANONICAL_NAME]) == {"X-1"}  # a tie: first in sort order
    again = _resolve(*reversed(rows))
    pd.testing.assert_frame_equal(again.sort_index(), out.sort_index())


def test_hela_and_hela_s3_stay_apart_and_are_listed_as_near_misses():
    out = _resolve(
        (CL, "a", "HeLa"), (CL, "b", "HeLa S3"), (CL, "c", "HELA"), (CL, "a", "CL1"), (CL, "b", "CL10")
    )
    assert out.loc["HeLa S3", S.CANONICAL_NAME] == "HeLa S3"
    assert out.loc["HeLa", S.CANONICAL_NAME] == out.loc["HELA", S.CANONICAL_NAME] != "HeLa S3"
    assert out.loc["HeLa S3", S.IDENTITY_CONFLICT] == S.IdentityConflict.NEAR_MISS
    assert out.loc["HeLa", S.IDENTITY_CONFLICT] == S.IdentityConflict.NEAR_MISS
    assert "HeLa S3" in out.loc["HeLa", S.IDENTITY_CONFLICT_DETAIL]
    assert out.loc[["CL1", "CL10"], S.IDENTITY_CONFLICT].isna().all()  # a number goes on: not a near miss


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("omeprazole", "esomeprazole"),
        ("(R)-ketamine", "ketamine"),
        ("(+)-X12", "(-)-X12"),
        ("cetirizine", "levocetirizine"),
        ("Nutlin-3", "Nutlin-3a"),
    ],
)
def test_a_drug_and_its_enantiomer_stay_apart_and_are_listed(one, other):
    out = _resolve((PG, "a", one), (PG, "b", other))
    assert out.loc[one, S.CANONICAL_NAME] == one and out.loc[other, S.CANONICAL_NAME] == other
    assert (out[S.IDENTITY_CONFLICT] == S.IdentityConflict.NEAR_MISS).all()


def test_a_name_linked_to_two_identities_is_listed_and_not_merged():
    out = _resolve((CL, "a", "MCF7", "COSMIC:1"), (CL, "b", "MCF-7", "COSMIC:2"), (CL, "c", "mcf7"))
    assert list(out[S.CANONICAL_NAME]) == list(out.index)  # every name keeps its own
    assert (out[S.IDENTITY_CONFLICT] == S.IdentityConflict.AMBIGUOUS).all()
    assert "COSMIC:1" in out.loc["mcf7", S.IDENTITY_CONFLICT_DETAIL]
    assert out.loc["MCF7", S.CANONICAL_ID] == "COSMIC:1" and out.loc["mcf7", S.CANONICAL_ID] is None


def test_a_source_giving_two_ids_for_one_name_is_ambiguous():
    frame = pd.DataFrame({S.DATASET: ["a", "a", "b"], S.CELL_LINE: ["X9", "X9", "x-9"],
                          S.CELL_LINE_ID: ["COSMIC:1", "COSMIC:2", None]})  # fmt: skip
    out = resolve_identities(source_names(frame)).set_index(S.SOURCE_NAME)
    assert out.loc["X9", S.IDENTITY_CONFLICT] == S.IdentityConflict.AMBIGUOUS
    assert out.loc["x-9", S.CANONICAL_NAME] == "x-9"


def test_identifiers_link_names_normalization_cannot():
    out = _resolve((CL, "gdsc", "NCI-H1299", "COSMIC:724831"), (CL, "other", "H1299", "COSMIC:724831"),
                   (CL, "third", "h-1299"))  # fmt: skip
    assert out[S.CANONICAL_NAME].nunique() == 1 and set(out[S.CANONICAL_ID]) == {"COSMIC:724831"}
    assert out.loc["H1299", S.IDENTITY_RULE] == S.IdentityRule.SOURCE_ID
    assert out.loc["h-1299", S.IDENTITY_RULE] == S.IdentityRule.NORMALIZED_NAME


def test_several_names_of_one_data_set_keep_their_names():
    out = _resolve((CL, "a", "A-549"), (CL, "a", "A549"), (CL, "b", "A549_LUNG"))
    assert set(out.loc[["A-549", "A549"], S.CANONICAL_NAME]) == {"A-549", "A549"}
    assert (out.loc[["A-549", "A549"], S.IDENTITY_CONFLICT] == S.IdentityConflict.SAME_DATASET).all()
    assert out.loc["A549_LUNG", S.IDENTITY_CONFLICT] is None


def test_user_table_gives_canonical_name_and_id_and_links_other_spellings():
    user = (
        UserIdentity(CL, "MDA-MB-435", "MDA-MB-435S", "CVCL_0417"),
        UserIdentity(PG, "PLX-4032", "vemurafenib"),
    )
    out = _resolve((CL, "a", "MDA-MB-435"), (CL, "b", "MDA-MB-435S"), (CL, "c", "mda-mb-435s"),
                   (PG, "a", "PLX-4032"), (PG, "b", "Vemurafenib"), identities=user)  # fmt: skip
    assert set(out.loc[["MDA-MB-435", "MDA-MB-435S", "mda-mb-435s"], S.CANONICAL_NAME]) == {"MDA-MB-435S"}
    assert set(out.loc[["MDA-MB-435", "mda-mb-435s"], S.CANONICAL_ID]) == {"CVCL_0417"}
    assert out.loc["MDA-MB-435", S.IDENTITY_RULE] == S.IdentityRule.USER_TABLE
    assert set(out.loc[["PLX-4032", "Vemurafenib"], S.CANONICAL_NAME]) == {"vemurafenib"}


CELLOSAURUS = (
    CellosaurusRecord(
        "CVCL_0023", "A-549", ("A549", "A.549", "NCI-A549"), ("COSMIC:905949", "DEPMAP:ACH-000681")
    ),
    CellosaurusRecord("CVCL_0030", "HeLa", ("HELA", "Hela"), ("COSMIC:930299",)),
    CellosaurusRecord("CVCL_0058", "HeLa S3", ("HeLaS3", "Hela S3"), ()),
    CellosaurusRecord("CVCL_9001", "KMS-11", ("KMS11",), ()),
    CellosaurusRecord("CVCL_9002", "KMS11 (clone)", ("KMS-11",), ()),
)


def test_cellosaurus_names_synonyms_accessions_and_cross_references():
    out = _resolve((CL, "a", "a549"), (CL, "b", "CVCL_0023"), (CL, "c", "X", "COSMIC:905949"),
                   (CL, "d", "ACH-000681"), (CL, "a", "HeLa"), (CL, "b", "HeLa S3"), (CL, "c", "KMS-11"),
                   cellosaurus=CELLOSAURUS)  # fmt: skip
    assert set(out.loc[["a549", "CVCL_0023", "X", "ACH-000681"], S.CANONICAL_NAME]) == {"A-549"}
    assert set(out.loc[["a549", "CVCL_0023", "X", "ACH-000681"], S.CANONICAL_ID]) == {"CVCL_0023"}
    assert out.loc["a549", S.IDENTITY_RULE] == S.IdentityRule.CELLOSAURUS_NAME
    assert out.loc["CVCL_0023", S.IDENTITY_RULE] == S.IdentityRule.CELLOSAURUS_ACCESSION
    assert out.loc["X", S.IDENTITY_RULE] == S.IdentityRule.SOURCE_ID
    assert out.loc["ACH-000681", S.IDENTITY_RULE] == S.IdentityRule.DEPMAP_ID
    assert (out.loc["HeLa", S.CANONICAL_ID], out.loc["HeLa S3", S.CANONICAL_ID]) == ("CVCL_0030", "CVCL_0058")
    assert out.loc["KMS-11", S.IDENTITY_CONFLICT] == S.IdentityConflict.AMBIGUOUS  # a name of two accessions
    assert out.loc["KMS-11", S.CANONICAL_ID] is None


def test_genetic_perturbagens_are_taken_as_given():
    out = _resolve(("knockout", "a", "KRAS"), ("knockout", "b", "kras"), (PG, "c", "KRAS"))
    assert list(out[S.CANONICAL_NAME]) == list(out.index)


# ------------------------------------------------------------------------------------------ real names
def _pset_names(folder) -> pd.DataFrame:
    from doseatlas.ingest.pharmacogx import read

    table = read(folder / "raw_long.csv")
    return table[[S.DATASET, S.CELL_LINE, S.PERTURBATION_TYPE, S.PERTURBAGEN]].drop_duplicates()


def _shared(identities: pd.DataFrame, kind: str) -> set[str]:
    part = identities[identities[S.IDENTITY_KIND] == kind]
    per = part.groupby(S.CANONICAL_NAME)[S.DATASET].nunique()
    return set(per[per > 1].index)


def test_gdscsmall_and_ccelsmall_names_after_resolution():
    root = external_dir("pharmacogx_small_psets")
    tables = [_pset_names(root / name) for name in ("GDSCsmall", "CCLEsmall")]
    identities = resolve_identities(source_names(*tables))
    lines, drugs = _shared(identities, CL), _shared(identities, PG)
    # the PharmacoSets were curated by PharmacoGx: the names already agree (7 lines, 15 drugs shared)
    assert len(lines) == 7 and "22RV1" in lines and len(drugs) == 15
    assert (
        identities[S.IDENTITY_CONFLICT]
        .isin([S.IdentityConflict.AMBIGUOUS, S.IdentityConflict.SAME_DATASET])
        .sum()
        == 0
    )


def test_ccle_names_resolve_onto_gdsc_names():
    """CCLE's own names (``22RV1_PROSTATE``, ``8MGBA_CENTRAL_NERVOUS_SYSTEM``) against GDSCsmall's."""
    root = external_dir("pharmacogx_small_psets")
    gdsc = _pset_names(root / "GDSCsmall")
    ccle = pd.read_csv(root / "CCLEsmall" / "sample_annotation.csv")["CCLE.name"].dropna()
    ccle = pd.DataFrame({S.DATASET: "CCLE", S.CELL_LINE: ccle, S.PERTURBATION_TYPE: "", S.PERTURBAGEN: None})
    identities = resolve_identities(source_names(gdsc, ccle.dropna(subset=[S.CELL_LINE])))
    lines = _shared(identities, CL)
    # 786-0 (GDSC, digit zero) vs 786O (CCLE, letter O) is not merged: not a spelling rule, a different string
    assert "22RV1" in lines and "8-MG-BA" in lines and "786-0" not in lines
    assert len(lines) == 8  # of GDSCsmall's 9 (23132-87 too: CCLE's 2313287_STOMACH)


# ------------------------------------------------------------------------------------------ invariants
_SPELLINGS = st.sampled_from(
    ["A-549", "A549", "a549", "A549_LUNG", "HeLa", "HeLa S3", "HELA", "X1", "X-1", "x10"]
)
_DRUGS = st.sampled_from(
    ["dabrafenib", "Dabrafenib mesylate", "omeprazole", "esomeprazole", "(R)-X", "X", "x"]
)


@settings(max_examples=20, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), _SPELLINGS, st.sampled_from([None, "COSMIC:1", "COSMIC:2"])),
        max_size=12,
    ),
    st.lists(st.tuples(st.sampled_from("abc"), _DRUGS), max_size=8),
    st.randoms(use_true_random=False),
)
def test_one_row_per_name_no_shared_canonical_within_a_data_set_and_order_free(lines, drugs, random):
    rows = [(CL, d, n, i) for d, n, i in lines] + [(PG, d, n) for d, n in drugs]
    names = source_names(
        pd.DataFrame([(r[1], r[2], r[3] if len(r) > 3 else None) for r in rows if r[0] == CL],
                     columns=[S.DATASET, S.CELL_LINE, S.CELL_LINE_ID]),
        pd.DataFrame([(r[1], "drug", r[2]) for r in rows if r[0] == PG],
                     columns=[S.DATASET, S.PERTURBATION_TYPE, S.PERTURBAGEN]),
    )  # fmt: skip
    out = resolve_identities(names)
    key = [S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.SOURCE_NAME]
    assert not out.duplicated(key).any() and len(out) == len(names)
    # merging never gives one metric key twice: distinct source names of a data set keep distinct canonical names
    assert not out.duplicated([S.IDENTITY_KIND, S.DATASET, S.PERTURBATION_TYPE, S.CANONICAL_NAME]).any()
    shuffled = names.sample(frac=1.0, random_state=random.randint(0, 10**6))
    pd.testing.assert_frame_equal(resolve_identities(shuffled), out)


def test_names_of_punctuation_only_are_not_merged_with_each_other():
    out = _resolve((CL, "a", "-"), (CL, "b", "?"), (CL, "c", "-"))
    assert set(out[S.CANONICAL_NAME]) == {"-", "?"}
