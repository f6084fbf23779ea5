"""The Merkle arithmetic against a direct transcription of RFC 9162 section 2.1."""

import hashlib

import pytest

from accessctl_wire import verify_export as m


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, literally."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return m.leaf_hash(leaves[0])
    k = m.split(len(leaves))
    return m.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = m.split(len(leaves))
    if index < k:
        return [*path(index, leaves[:k]), mth(leaves[k:])]
    return [*path(index - k, leaves[k:]), mth(leaves[:k])]


def proof(size: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n])."""

    def sub(mm: int, d: list[bytes], complete: bool) -> list[bytes]:
        if mm == len(d):
            return [] if complete else [mth(d)]
        k = m.split(len(d))
        if mm <= k:
            return [*sub(mm, d[:k], complete), mth(d[k:])]
        return [*sub(mm - k, d[k:], False), mth(d[:k])]

    return sub(size, leaves, True)


def store(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree's hash, as the sealer stores them."""
    nodes = {(0, i): m.leaf_hash(d) for i, d in enumerate(leaves)}
    level = 0
    while True:
        pairs = [
            (i, nodes.get((level, 2 * i)), nodes.get((level, 2 * i + 1)))
            for i in range(len(leaves))
        ]
        new = {(level + 1, i): m.node_hash(a, b) for i, a, b in pairs if a and b}
        if not new:
            return nodes
        nodes.update(new)
        level += 1


LEAVES = [f"event {i}".encode() for i in range(40)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 40])
def test_roots_and_inclusion_paths_match_the_rfc(n):
    leaves = LEAVES[:n]
    nodes = store(leaves)
    root = m.subtree_root(lambda lv, ix: nodes[(lv, ix)], 0, n)
    assert root == mth(leaves)
    for index in range(n):
        spans = m.inclusion_path(index, n)
        hashes = [m.subtree_root(lambda lv, ix: nodes[(lv, ix)], a, b) for a, b in spans]
        assert hashes == path(index, leaves)
        assert m.root_from_path(m.leaf_hash(leaves[index]), index, n, hashes) == root
        tampered = m.leaf_hash(leaves[index] + b"!")
        assert m.root_from_path(tampered, index, n, hashes) != root


@pytest.mark.parametrize(
    ("old", "new"), [(1, 2), (3, 7), (4, 8), (6, 8), (7, 40), (16, 17), (5, 5)]
)
def test_consistency_proofs_match_the_rfc_and_verify(old, new):
    nodes = store(LEAVES[:new])
    spans = m.consistency_path(old, new)
    hashes = [m.subtree_root(lambda lv, ix: nodes[(lv, ix)], a, b) for a, b in spans]
    assert hashes == (proof(old, LEAVES[:new]) if old < new else [])
    assert m.verify_consistency(old, new, mth(LEAVES[:old]), mth(LEAVES[:new]), hashes)
    rewritten = [b"x", *LEAVES[1:old]]
    assert (
        not m.verify_consistency(old, new, mth(rewritten), mth(LEAVES[:new]), hashes)
        or old == new == 0
    )


@pytest.mark.parametrize(("index", "n"), [(0, 1), (0, 2), (5, 8), (6, 7), (39, 40)])
def test_an_inclusion_path_of_the_wrong_length_is_refused(index, n):
    """A proof one node too long or too short names no root at all (RFC 9162 2.1.3.2
    fails it), rather than a root that happens to be compared."""
    leaves = LEAVES[:n]
    hashes = path(index, leaves)
    leaf = m.leaf_hash(leaves[index])
    with pytest.raises(ValueError, match="audit path too long"):
        m.root_from_path(leaf, index, n, [*hashes, mth(leaves)])
    if hashes:
        with pytest.raises(ValueError, match="audit path too short"):
            m.root_from_path(leaf, index, n, hashes[:-1])


@pytest.mark.parametrize(("old", "new"), [(3, 7), (4, 8), (6, 8), (7, 40)])
def test_a_consistency_proof_must_be_exactly_the_proof(old, new):
    """The proof of ``old`` in ``new`` verifies; the same proof for other sizes, with a
    node missing or one extra, or no proof at all, does not."""
    good = proof(old, LEAVES[:new])
    old_root, new_root = mth(LEAVES[:old]), mth(LEAVES[:new])
    assert m.verify_consistency(old, new, old_root, new_root, good)
    assert not m.verify_consistency(old, new, old_root, new_root, [*good, good[-1]])
    assert not m.verify_consistency(old, new, old_root, new_root, good[:-1])
    if old & (old - 1):  # for a power of two the old root is the first node: none needed
        assert not m.verify_consistency(old, new, old_root, new_root, [])
    assert not m.verify_consistency(new, old, new_root, old_root, good)  # sizes swapped
    assert not m.verify_consistency(0, new, mth([]), new_root, good)
    assert not m.verify_consistency(new, new, new_root, new_root, good)  # same size: no proof
