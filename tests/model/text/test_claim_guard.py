"""The claim guard: which next tokens an explanation may not take, and that both decoders obey it."""
from __future__ import annotations

import torch

from bodytalk.model.text.claim_guard import ClaimGuard


class _Vocab:
    """A tokenizer stand-in: ids are positions in this list."""
    TOKENS = [" little", " limb", " movement", " (", "0", ".", "1", " m", "),", " hands", ");", " smile",
              " sm", "all", " face", " Facing", ",", " eyes"]

    def __len__(self) -> int:
        return len(self.TOKENS)

    def batch_decode(self, rows):
        return ["".join(self.TOKENS[i] for i in row) for row in rows]


def ids(*words: str) -> list[int]:
    return [_Vocab.TOKENS.index(w) for w in words]


def test_separators_and_unobservable_whole_words_are_found():
    g = ClaimGuard(_Vocab())
    assert g.separators == set(ids("),", ");", ","))
    assert g.unobservable == set(ids(" smile", " face", " eyes"))   # not "sm" (of "small"), not " Facing"


def test_a_new_claim_cannot_open_as_an_earlier_one():
    g = ClaimGuard(_Vocab())
    first = ids(" little", " limb", " movement", " (", "0", ".", "1", " m", "),")
    assert g.claim_starts(first) == ids(" little")
    assert set(ids(" little")) <= g.banned(first)                        # at a claim start
    assert not set(ids(" little")) & g.banned(first[:3])                 # inside a claim: free
    both = first + ids(" hands", " (", "0", ");")
    assert set(ids(" little", " hands")) <= g.banned(both)
    assert g.banned([]) == g.unobservable                                 # the first claim: only the words


def test_both_decoders_obey_the_ban_and_agree(tiny_llm):
    torch.manual_seed(0)
    embeds = torch.randn(1, 5, tiny_llm.hidden_size)
    mask = torch.ones(1, 5, dtype=torch.long)
    seen: list[list[int]] = []

    def watch(got):                      # the decoder hands the guard the ids generated so far
        seen.append(list(got))
        return set()
    free = tiny_llm.generate(embeds, mask, max_new_tokens=6, banned=watch)[0]
    assert seen[0] == [] and len(seen[-1]) >= 1
    first = seen[-1][0]
    ban = lambda got: {first} if not got else set()  # noqa: E731
    seen.clear()
    guarded = tiny_llm.generate(embeds, mask, max_new_tokens=6, banned=lambda got: watch(got) | ban(got))[0]
    assert seen[-1][0] != first and guarded != free
    assert "".join(tiny_llm.generate_stream(embeds, mask, max_new_tokens=6, banned=ban)) == guarded
