"""Synthetic MedNLI, RadQA and CLIP data whose labels follow from templated cue words.

The cues are consistent so that a tiny model can learn them. A MedNLI
hypothesis that negates the premise's finding ("no history of", "never",
"denies") is a contradiction. One that restates it is an entailment, and one
about something else ("may", "family history", "will") is neutral. CLIP labels
follow the instruction sentence ("Follow up with Dr. ..." is an appointment,
"Please have your INR checked" a lab follow-up). Class frequencies are
deliberately unequal, so the majority class is a real baseline.

  word_tokenize("Follow up with Dr. [**Last Name (STitle) 123**] in 2 weeks.")
  -> ['Follow', 'up', 'with', 'Dr.', '[', '**Last', 'Name', '(', 'STitle', ')',
      '123**', ']', 'in', '2', 'weeks', '.']
"""

import random
import re

from clinical_t5.synth import phi
from clinical_t5.synth import text as text_lib

CLIP_LABELS = ("I-Appointment-related followup", "I-Medication-related followups",
               "I-Lab-related followup", "I-Procedure-related followup",
               "I-Imaging-related followup", "I-Case-specific instructions for patient",
               "I-Other helpful contextual information")
APPOINTMENT, MEDICATION, LAB, PROCEDURE, IMAGING, INSTRUCTIONS, OTHER = CLIP_LABELS

MEDNLI_KEYS = ("pairID", "gold_label", "sentence1", "sentence2", "sentence1_parse",
               "sentence2_parse", "sentence1_binary_parse", "sentence2_binary_parse")
# NOTE: unequal label frequencies: the majority baseline is 42%, not 33%.
MEDNLI_LABEL_WEIGHTS = (("entailment", 42), ("contradiction", 33), ("neutral", 25))

_TOKEN_RE = re.compile(r"\d+(?:[.,:/]\d+)+|[^\s\[\](){}<>,;:?!\"]+|[\[\](){}<>,;:?!\"]")
_TITLES = ("Dr.", "Mr.", "Mrs.", "Ms.")


def word_tokenize(sentence: str) -> list[str]:
  """Split a sentence into tokens the way NLTK's `word_tokenize` roughly does.

  Brackets, commas, colons and quotes become tokens, the final period is split
  off, `n't` and `'s` are separate tokens, and `**` stays on the word it touches.
  """
  out: list[str] = []
  for tok in _TOKEN_RE.findall(sentence):
    if tok.endswith("n't") and len(tok) > 3:
      out += [tok[:-3], "n't"]
    elif tok.endswith("'s") and len(tok) > 2:
      out += [tok[:-2], "'s"]
    else:
      out.append(tok)
  if out and out[-1].endswith(".") and out[-1] != "." and out[-1] not in _TITLES:
    out[-1] = out[-1][:-1]
    out.append(".")
  return out


# ---------------------------------------------------------------- CLIP

_COURSE_PLAIN = [
    "The patient was admitted to the {unit} with {acute}.",
    "He was treated with IV {med} and his symptoms resolved.",
    "Her {lab} was trended and remained stable during the admission.",
    "Blood cultures from {DATE} showed no growth.",
    "The patient was seen by Dr. {NAME} of the {HOSP} team.",
    "Physical therapy evaluated the patient and cleared her for home.",
]
# (template, labels) of sentences that carry a follow-up label.
_COURSE_LABELED = [
    ("She will need a repeat {imaging} as an outpatient to follow the nodule.", (IMAGING,)),
    ("His {med} was stopped and should not be restarted until he sees his cardiologist.",
     (MEDICATION,)),
    ("The patient's primary care physician is Dr. {NAME} at {HOSP}.", (OTHER,)),
    ("A {lab} level was pending at the time of discharge.", (OTHER,)),
]
_INSTRUCTIONS = [
    ("Please continue taking {med} {dose} {freq}.", (MEDICATION,)),
    ("Your {med} dose was changed to {dose} {freq}.", (MEDICATION,)),
    ("Please stop taking {med}.", (MEDICATION,)),
    ("Please have your {lab} checked on {DATE}.", (LAB,)),
    ("You will need blood work to check your {lab} in 1 week.", (LAB,)),
    ("Call your doctor or return to the emergency room if you develop {symptom}.", ()),
    ("Do not lift more than 10 pounds for 6 weeks.", ()),
    ("Weigh yourself every morning and call if your weight goes up more than 3 lbs.", ()),
]
_FOLLOWUP = [
    ("Follow up with Dr. {NAME} in {n} weeks.", (APPOINTMENT,)),
    ("You have an appointment with Dr. {NAME} on {DATE} at 10:30 AM.", (APPOINTMENT,)),
    ("You are scheduled for a {procedure} on {DATE}.", (PROCEDURE,)),
    ("Please get a repeat {imaging} in {n} weeks.", (IMAGING,)),
    ("Your {lab} results will be reviewed by Dr. {NAME} at your next visit.", (LAB, OTHER)),
]


def make_clip_doc(filler: phi.Filler, rng: random.Random) -> tuple[str, list[tuple[str, list[str]]]]:
  """Return a discharge summary text and its sentences with their CLIP labels."""
  units: list[tuple[str, tuple[str, ...]]] = [
      ("Admission Date:  {FULLDATE}     Discharge Date:   {FULLDATE}", ()),
      ("Date of Birth:  {DOB}     Sex:   {sex}", ()), ("Service: {service}", ()),
      ("History of Present Illness:", ()),
      ("{age} y/o with {cond} who presents with {acute}.", ()),
      ("Brief Hospital Course:", ())]
  course = [(t, ()) for t in rng.sample(_COURSE_PLAIN, rng.randint(3, 5))]
  course += rng.sample(_COURSE_LABELED, rng.randint(0, 2))
  rng.shuffle(course)
  units += course
  units += [("Discharge Medications:", ()), ("1. {med} {dose} PO {freq}.", ()),
            ("2. {med} {dose} PO {freq}.", ()), ("Discharge Diagnosis:", ()), ("{acute}", ())]
  after = [("Discharge Instructions:", ())] + rng.sample(_INSTRUCTIONS, rng.randint(2, 4))
  after += [("Followup Instructions:", ())] + rng.sample(_FOLLOWUP, rng.randint(1, 3))
  # Sentences in and after the instruction headers also get the instructions label.
  units += [(t, labels + (INSTRUCTIONS,)) for t, labels in after]

  sentences = [(template.format_map(filler), sorted(labels, key=CLIP_LABELS.index))
               for template, labels in units]
  text = "\n".join(s for s, _ in sentences) + "\n"
  return text, sentences


def clip_rows(doc_id: int, sentences: list[tuple[str, list[str]]]) -> list[list[str]]:
  """Return the sentence_level.csv rows of one document (doc_id, sent_index, sentence, labels)."""
  return [[str(doc_id), str(i), repr(word_tokenize(s)), repr(list(labels))]
          for i, (s, labels) in enumerate(sentences)]


# ---------------------------------------------------------------- RadQA

# topic -> (findings sentence, answer in it, impression sentence, answer in it, question)
_RADQA_TOPICS = {
    "pneumothorax": ("There is no pneumothorax.", "no pneumothorax", "No pneumothorax.",
                     "No pneumothorax", "Is there a pneumothorax?"),
    "effusion": ("There is a small {side} pleural effusion.", "small {side} pleural effusion",
                 "Small {side} pleural effusion.", "Small {side} pleural effusion",
                 "Is there a pleural effusion?"),
    "nodule": ("There is a {k} mm nodule in the {lobe}.", "{k} mm",
               "{k} mm nodule in the {lobe}, recommend follow-up CT.", "{k} mm",
               "What is the size of the nodule?"),
    "heart": ("The heart size is mildly enlarged.", "mildly enlarged", "Mild cardiomegaly.",
              "Mild cardiomegaly", "Is the heart enlarged?"),
    "line": ("A right internal jugular central line ends in the SVC.", "in the SVC",
             "Right IJ line ends in the SVC.", "in the SVC", "Where does the central line end?"),
    "consolidation": ("There is a focal consolidation in the {lobe}.", "focal consolidation in the {lobe}",
                      "Pneumonia in the {lobe}.", "Pneumonia in the {lobe}",
                      "Is there evidence of pneumonia?"),
    "fracture": ("There is an acute fracture of the {side} sixth rib.", "acute fracture of the {side} sixth rib",
                 "Acute {side} sixth rib fracture.", "Acute {side} sixth rib fracture",
                 "Is there a rib fracture?"),
}
# Every findings paragraph gets the comparison sentence, so each RadQA context
# contains at least one `[**...**]` placeholder, as real RadQA contexts do.
_RADQA_COMPARISON = "Comparison is made to the prior study of {DATE}."
_RADQA_FILLER = ["Findings were discussed with Dr. {NAME} at 10:30 AM on {DATE}.",
                 "The osseous structures are otherwise unremarkable."]


def _join_with_answers(parts: list[tuple[str, str]]) -> tuple[str, dict[int, tuple[str, int]]]:
  """Join sentences with spaces. Return the text and {part index: (answer text, start)}."""
  text, answers = "", {}
  for i, (sentence, answer) in enumerate(parts):
    if text:
      text += " "
    if answer:
      answers[i] = (answer, len(text) + sentence.index(answer))
    text += sentence
  return text, answers


def make_radqa_doc(filler: phi.Filler, rng: random.Random) -> tuple[str, dict]:
  """Return a radiology report and its RadQA paragraphs (findings, impression) with questions."""
  values = {"side": rng.choice(("left", "right")), "lobe": rng.choice(text_lib.VOCAB["lobe"]),
            "k": str(rng.randint(3, 15))}
  names = sorted(_RADQA_TOPICS)
  present = rng.sample(names, 3)
  absent = rng.choice([n for n in names if n not in present])
  in_impression = set(rng.sample(present, rng.randint(1, 2)))

  findings_parts = [(_RADQA_TOPICS[t][0].format(**values), _RADQA_TOPICS[t][1].format(**values), t)
                    for t in present]
  findings_parts.insert(0, (_RADQA_COMPARISON.format_map(filler), "", ""))
  findings_parts.insert(rng.randint(1, 4), (rng.choice(_RADQA_FILLER).format_map(filler), "", ""))
  impression_parts = [(_RADQA_TOPICS[t][2].format(**values), _RADQA_TOPICS[t][3].format(**values), t)
                      for t in present if t in in_impression]
  findings, f_answers = _join_with_answers([(s, a) for s, a, _ in findings_parts])
  impression, i_answers = _join_with_answers([(s, a) for s, a, _ in impression_parts])

  paragraphs = []
  for tag, context, parts, answers in (("F", findings, findings_parts, f_answers),
                                       ("I", impression, impression_parts, i_answers)):
    by_topic = {parts[i][2]: answers[i] for i in answers}
    qas = []
    for q, topic in enumerate(present[:2] + [absent]):
      if topic in by_topic:
        answer, start = by_topic[topic]
        qas.append({"id": f"{{row}}_{q}_{tag}", "question": _RADQA_TOPICS[topic][4],
                    "answers": [{"text": answer, "answer_start": start}], "is_impossible": False})
      else:
        qas.append({"id": f"{{row}}_{q}_{tag}", "question": _RADQA_TOPICS[topic][4],
                    "answers": [], "is_impossible": True})
    paragraphs.append({"context": context, "qas": qas})

  header = text_lib.radiology_header(filler)
  text = f"{header} INDICATION: eval for {rng.choice(text_lib.VOCAB['acute'])}.\n\n" \
         f" FINDINGS: {findings}\n\n IMPRESSION: {impression}\n"
  return text, {"paragraphs": paragraphs}


def radqa_article(row_id: int, payload: dict) -> dict:
  """Return the SQuAD-v2 article of one report; `title` is its NOTEEVENTS ROW_ID."""
  paragraphs = []
  for p in payload["paragraphs"]:
    qas = [dict(qa, id=qa["id"].replace("{row}", str(row_id))) for qa in p["qas"]]
    paragraphs.append({"context": p["context"], "qas": qas})
  return {"title": str(row_id), "paragraphs": paragraphs}


# ---------------------------------------------------------------- MedNLI

_PREMISES = ["History of {c}, on {med}.", "Past medical history is significant for {c}.",
             "The patient was admitted with {c}.", "PMH: {c}, s/p recent admission to {HOSP}.",
             "{age} y/o with a long history of {c}."]
_HYPOTHESES = {
    "entailment": ["The patient has {c}.", "Patient has a history of {c}.",
                   "The patient carries a diagnosis of {c}."],
    "contradiction": ["The patient has no history of {c}.", "Patient has never had {c}.",
                      "The patient denies any history of {c}."],
    "neutral": ["The patient may need {procedure} in the future.",
                "The patient has a family history of {other}.",
                "The patient will be discharged to rehab."],
}


def _parse(sentence: str) -> tuple[str, str]:
  """Return a flat PTB-style parse and a right-branching binary parse of a sentence."""
  tokens = word_tokenize(sentence)
  words = [t.replace("(", "-LRB-").replace(")", "-RRB-") for t in tokens]
  parse = "(ROOT (S " + " ".join(f"({'.' if w == '.' else 'NN'} {w})" for w in words) + "))"
  binary = words[-1]
  for w in reversed(words[:-1]):
    binary = f"( {w} {binary} )"
  return parse, binary


def make_mednli(rng: random.Random, count: int) -> list[dict]:
  """Return `count` MedNLI records with all eight keys."""
  labels = [label for label, _ in MEDNLI_LABEL_WEIGHTS]
  weights = [w for _, w in MEDNLI_LABEL_WEIGHTS]
  conditions = text_lib.VOCAB["cond"] + text_lib.VOCAB["acute"]
  records = []
  for _ in range(count):
    label = rng.choices(labels, weights=weights)[0]
    filler = phi.Filler(rng, "mimic3", 2150, text_lib.VOCAB)
    condition = rng.choice(conditions)
    other = rng.choice([c for c in conditions if c != condition])
    values = {"c": condition, "other": other, "med": rng.choice(text_lib.VOCAB["med"]),
              "procedure": rng.choice(text_lib.VOCAB["procedure"]),
              "age": str(rng.randint(30, 89))}
    premise = rng.choice(_PREMISES).replace("{HOSP}", "{{HOSP}}").format(**values).format_map(filler)
    hypothesis = rng.choice(_HYPOTHESES[label]).format(**values)
    p1, b1 = _parse(premise)
    p2, b2 = _parse(hypothesis)
    pair_id = (f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-11e7-"
               f"{rng.getrandbits(16):04x}-{rng.getrandbits(48):012x}")
    records.append({"pairID": pair_id, "gold_label": label, "sentence1": premise,
                    "sentence2": hypothesis, "sentence1_parse": p1, "sentence2_parse": p2,
                    "sentence1_binary_parse": b1, "sentence2_binary_parse": b2})
  return records
