"""Seeded samples of training lines without exact duplicates.

SentencePiece's unigram trainer enumerates the repeated substrings of all its
input (its "Extracting frequent sub strings" step). Many copies of one line
make that step slow and memory-hungry. `split_note` cuts a 1 MB periodic note
into hundreds of identical lines, which kept SentencePiece 0.2.2 busy for over
ten minutes in a reported run. The trainer is therefore given each distinct line
at most once.

  counts = collections.Counter()
  sample_unique_lines(iter(["a b", "c", "a b", "d"]), size=10, seed=0, counts=counts)
  # -> ["a b", "c", "d"]; counts["duplicate_lines_dropped"] == 1

Lines are compared by a 64-bit BLAKE2b hash, which is the same in every
process (Python's `hash` of a str is not), so a sample is reproducible from
the seed. Two different lines with the same hash would count as duplicates;
for 10^8 lines the chance that any pair collides is below 10^-3.
"""

import hashlib
import random
from typing import Iterator, MutableMapping

DUPLICATES_KEY = "duplicate_lines_dropped"


def line_hash(line: str) -> int:
  """Return a 64-bit hash of `line` that does not depend on the process."""
  return int.from_bytes(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest(), "little")


def unique_lines(lines: Iterator[str], counts: MutableMapping[str, int]) -> Iterator[str]:
  """Yield each distinct line once, in input order; count the others in counts[DUPLICATES_KEY].

  Memory is 8 bytes of hash (plus set overhead) per distinct line. This is the
  path without sampling, where the trainer keeps every distinct line in memory anyway.
  """
  seen = set()
  for line in lines:
    digest = line_hash(line)
    if digest in seen:
      counts[DUPLICATES_KEY] += 1
      continue
    seen.add(digest)
    yield line


def sample_unique_lines(lines: Iterator[str], size: int, seed: int,
                        counts: MutableMapping[str, int]) -> list[str]:
  """Return a seeded reservoir sample of at most `size` lines in which no line occurs twice.

  A line equal to one in the sample at the time it arrives is dropped and
  counted in counts[DUPLICATES_KEY]; every other line takes part in a uniform
  reservoir sample (Algorithm R). Only the hashes of the sampled lines are
  kept, so memory stays bounded by `size`. When the input has at most `size`
  distinct lines, the result is exactly those lines in input order. Otherwise
  a line whose copy was evicted from the sample may enter it again later,
  but never beside a copy.
  """
  rng = random.Random(seed)
  sample: list[str] = []
  hashes: list[int] = []
  in_sample: set[int] = set()
  offered = 0
  for line in lines:
    digest = line_hash(line)
    if digest in in_sample:
      counts[DUPLICATES_KEY] += 1
      continue

    if offered < size:
      sample.append(line)
      hashes.append(digest)
      in_sample.add(digest)
    else:
      slot = rng.randrange(offered + 1)
      if slot < size:
        in_sample.discard(hashes[slot])
        sample[slot], hashes[slot] = line, digest
        in_sample.add(digest)
    offered += 1
  return sample
