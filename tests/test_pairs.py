"""DPO pairs: correct x incorrect per problem, duplicates merged, a seeded per-problem cap."""

from vstar.training.pairs import build_pairs, split_heldout


def _rec(pid, text, ok):
    return {"problem_id": pid, "prompt": f"P{pid}\n", "completion": text, "correct": ok}


def test_cartesian_product_with_duplicates_merged():
    records = [_rec("a", "g1", True), _rec("a", "g1", True), _rec("a", "g2", True),
               _rec("a", "b1", False), _rec("a", "b2", False), _rec("a", "b2", False), _rec("a", "b3", False),
               _rec("b", "g", True),  # no incorrect sample: no pairs
               _rec("c", "x", False)]  # no correct sample: no pairs
    pairs, counts = build_pairs(records, cap=100, seed=0)
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {(g, b) for g in ("g1", "g2") for b in ("b1", "b2", "b3")}
    assert len(pairs) == 6
    assert counts == {"problems": 3, "problems_with_pairs": 1, "pairs_before_cap": 6, "pairs_total": 6, "cap_per_problem": 100}


def test_cap_is_per_problem_seeded_and_without_repeats():
    records = [_rec("a", f"g{i}", True) for i in range(5)] + [_rec("a", f"b{i}", False) for i in range(5)]
    records += [_rec("b", "g", True), _rec("b", "b", False)]
    pairs, counts = build_pairs(records, cap=7, seed=3)
    again, _ = build_pairs(records, cap=7, seed=3)
    other, _ = build_pairs(records, cap=7, seed=4)
    in_a = [(p["chosen"], p["rejected"]) for p in pairs if p["problem_id"] == "a"]
    assert len(in_a) == 7 == len(set(in_a))
    assert counts["pairs_before_cap"] == 26 and counts["pairs_total"] == 8
    assert pairs == again and pairs != other


def test_heldout_split_keeps_problems_whole():
    records = []
    for pid in range(20):
        records += [_rec(str(pid), "g", True), _rec(str(pid), "b1", False), _rec(str(pid), "b2", False)]
    pairs, _ = build_pairs(records, cap=10, seed=0)
    train, held = split_heldout(pairs, 0.25, seed=0)
    assert len(held) == 10 and len(train) == 30
    assert not {p["problem_id"] for p in train} & {p["problem_id"] for p in held}
