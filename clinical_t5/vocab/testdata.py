"""Small, varied clinical-looking notes and TFRecord shards for vocabulary tests.

The vocabulary tests and the benchmark need a corpus in the corpus builder's
format (TFRecord shards of `tf.train.Example` with a bytes feature `text`) that
trains a unigram model of about 1,000 pieces in seconds. Templated text with a
small word list caps a unigram vocabulary well below 1,000 pieces, so the
generator combines several hundred words, numbers, dates and DEID tags:

  >>> notes = clinical_notes(2, seed=0)
  >>> len(notes), "\\n" in notes[0]
  (2, True)
  >>> write_shards("/tmp/corpus", notes, num_shards=1)
  ['/tmp/corpus/train.tfrecord-00000-of-00001']

The text is synthetic and contains no PHI.
"""

import os
import random
from typing import Sequence

from clinical_t5.corpus.deid import DEID_TAGS

_DRUGS = (
    "metformin", "lisinopril", "atorvastatin", "amlodipine", "metoprolol", "furosemide", "heparin",
    "warfarin", "apixaban", "insulin glargine", "vancomycin", "piperacillin-tazobactam", "ceftriaxone",
    "azithromycin", "levothyroxine", "pantoprazole", "omeprazole", "acetaminophen", "oxycodone",
    "morphine", "hydromorphone", "ondansetron", "prednisone", "dexamethasone", "albuterol",
    "ipratropium", "tiotropium", "gabapentin", "sertraline", "quetiapine", "haloperidol", "lorazepam",
    "clopidogrel", "aspirin", "digoxin", "amiodarone", "diltiazem", "spironolactone", "potassium chloride",
    "magnesium sulfate", "norepinephrine", "vasopressin", "propofol", "fentanyl", "midazolam",
    "enoxaparin", "nitroglycerin", "hydralazine", "labetalol", "carvedilol", "tamsulosin", "finasteride",
)
_CONDITIONS = (
    "congestive heart failure", "atrial fibrillation", "chronic obstructive pulmonary disease",
    "community-acquired pneumonia", "urinary tract infection", "acute kidney injury",
    "chronic kidney disease stage 3", "type 2 diabetes mellitus", "hypertension", "hyperlipidemia",
    "sepsis", "septic shock", "diabetic ketoacidosis", "gastrointestinal bleed", "pulmonary embolism",
    "deep vein thrombosis", "cellulitis", "delirium", "alcohol withdrawal", "cirrhosis", "ascites",
    "hepatic encephalopathy", "pancreatitis", "cholecystitis", "small bowel obstruction",
    "subarachnoid hemorrhage", "ischemic stroke", "seizure disorder", "syncope", "anemia",
    "thrombocytopenia", "hyponatremia", "hyperkalemia", "hypoglycemia", "aortic stenosis",
    "mitral regurgitation", "coronary artery disease", "NSTEMI", "STEMI", "asthma exacerbation",
    "pleural effusion", "pneumothorax", "respiratory failure", "osteomyelitis", "endocarditis",
)
_FINDINGS = (
    "bibasilar crackles", "jugular venous distension", "lower extremity edema", "a systolic murmur",
    "diminished breath sounds", "expiratory wheezes", "abdominal tenderness", "guarding", "rebound",
    "hepatosplenomegaly", "asterixis", "scleral icterus", "a regular rhythm", "an irregularly irregular rhythm",
    "clear lungs", "a soft, non-distended abdomen", "warm extremities", "cool, mottled extremities",
    "no focal deficits", "a left facial droop", "right-sided weakness", "pinpoint pupils", "dry mucous membranes",
)
_SECTIONS = (
    "Chief Complaint", "History of Present Illness", "Past Medical History", "Medications on Admission",
    "Allergies", "Physical Exam", "Pertinent Results", "Brief Hospital Course", "Assessment and Plan",
    "Discharge Medications", "Discharge Diagnosis", "Discharge Condition", "Discharge Instructions",
    "Followup Instructions", "IMPRESSION", "FINDINGS", "TECHNIQUE", "COMPARISON", "INDICATION",
)
_VERBS = (
    "was started on", "was continued on", "was transitioned to", "was weaned off", "was given",
    "received", "was restarted on", "was titrated up on", "was discontinued from", "tolerated",
)
_PEOPLE = ("The patient", "Pt", "She", "He", "The patient's daughter", "Family", "The team", "Nursing")
_PLACES = ("the MICU", "the CCU", "the floor", "rehab", "the ED", "the OR", "cardiology clinic", "home")
_UNITS = ("mg", "mcg", "units", "mL", "g", "mEq", "mg/kg", "mg/dL", "mmol/L")
_ROUTES = ("PO", "IV", "SC", "IM", "PR", "SL", "via NGT")
_FREQS = ("daily", "BID", "TID", "QID", "q6h", "q8h", "q12h", "PRN", "qHS", "once")
_LABS = ("Na", "K", "Cl", "HCO3", "BUN", "Cr", "Glucose", "WBC", "Hgb", "Hct", "Plt", "INR", "PTT",
         "Lactate", "Troponin", "BNP", "ALT", "AST", "Alk Phos", "T bili", "Lipase", "Albumin")
_WORDS = (
    "afebrile", "hemodynamically", "stable", "overnight", "improving", "worsening", "unchanged", "mild",
    "moderate", "severe", "acute", "chronic", "bilateral", "left", "right", "upper", "lower", "anterior",
    "posterior", "without", "with", "likely", "possible", "concerning", "consistent", "evidence",
    "interval", "decrease", "increase", "resolution", "follow-up", "outpatient", "recommend", "consider",
    "monitor", "repeat", "obtain", "trend", "continue", "hold", "restart", "titrate", "ambulating",
    "tolerating", "diet", "pain", "controlled", "nausea", "vomiting", "diarrhea", "constipation",
)


def _number(rng: random.Random) -> str:
  kind = rng.randrange(4)
  if kind == 0:
    return str(rng.randint(1, 250))
  if kind == 1:
    return f"{rng.uniform(0, 40):.1f}"
  if kind == 2:
    return f"{rng.randint(80, 200)}/{rng.randint(40, 110)}"
  return f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(2100, 2200)}"


def _tag(rng: random.Random) -> str:
  return rng.choice(DEID_TAGS)


def _sentence(rng: random.Random) -> str:
  """Return one sentence drawn from thirteen clinical templates."""
  kind = rng.randrange(13)
  if kind == 0:
    return (f"{rng.choice(_PEOPLE)} {rng.choice(_VERBS)} {rng.choice(_DRUGS)} {rng.randint(1, 100)} "
            f"{rng.choice(_UNITS)} {rng.choice(_ROUTES)} {rng.choice(_FREQS)}.")
  if kind == 1:
    return f"{_tag(rng)} is a {rng.randint(18, 99)} y/o {rng.choice('MF')} with {rng.choice(_CONDITIONS)}."
  if kind == 2:
    labs = ", ".join(f"{rng.choice(_LABS)} {_number(rng)}" for _ in range(rng.randint(2, 5)))
    return f"Labs notable for {labs}."
  if kind == 3:
    return f"Exam with {rng.choice(_FINDINGS)} and {rng.choice(_FINDINGS)}."
  if kind == 4:
    return (f"Transferred to {rng.choice(_PLACES)} on {_tag(rng)} for {rng.choice(_CONDITIONS)}; "
            f"{' '.join(rng.sample(_WORDS, 4))}.")
  if kind == 5:
    return (f"Vitals: T {rng.uniform(35.5, 40.2):.1f} HR {rng.randint(40, 160)} BP {_number(rng)} "
            f"RR {rng.randint(8, 36)} SpO2 {rng.randint(82, 100)}% on {rng.randint(1, 6)}L NC.")
  if kind == 6:
    return f"Called Dr. {_tag(rng)} at {_tag(rng)} ({rng.choice(_PLACES)}), pager {_tag(rng)}."
  if kind == 7:
    return (f"Impression: {rng.choice(_WORDS)} {rng.choice(_CONDITIONS)}, {rng.choice(_WORDS)} "
            f"{rng.choice(_WORDS)} compared with {_tag(rng)}.")
  if kind == 8:
    return f"{rng.randint(1, 9)}. {rng.choice(_DRUGS).title()} {rng.randint(1, 500)} {rng.choice(_UNITS)} {rng.choice(_FREQS)}"
  if kind == 9:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 14))).capitalize() + "."
  if kind == 10:
    return (f"{rng.choice(_CONDITIONS).capitalize()} - {rng.choice(_PEOPLE).lower()} "
            f"{rng.choice(_VERBS)} {rng.choice(_DRUGS)}, {rng.choice(_WORDS)} {rng.choice(_FINDINGS)}.")
  if kind == 11:
    # A lab table aligned with runs of spaces, as MIMIC notes often are.
    return "  ".join(f"{rng.choice(_LABS):<8}{_number(rng):>6}" for _ in range(rng.randint(2, 4)))
  return f"Follow up with {_tag(rng)} in {rng.randint(1, 12)} weeks ({_tag(rng)} {_number(rng)})."


def clinical_notes(num_notes: int, seed: int = 0, *, min_lines: int = 3,
                   max_lines: int = 15) -> list[str]:
  """Return `num_notes` deterministic multi-line notes with sections, tabs and tags."""
  rng = random.Random(seed)
  notes = []
  for _ in range(num_notes):
    lines = []
    for _ in range(rng.randint(min_lines, max_lines)):
      if rng.random() < 0.2:
        lines.append(f"{rng.choice(_SECTIONS)}:")
      if rng.random() < 0.05:
        lines.append(rng.choice("_-=*") * rng.randint(10, 80))
      sentences = [_sentence(rng) for _ in range(rng.randint(1, 3))]
      separator = "\t" if rng.random() < 0.1 else " "
      lines.append(separator.join(sentences))
    notes.append("\n".join(lines))
  return notes


def write_shards(out_dir: str, notes: Sequence[str], num_shards: int = 2,
                 split: str = "train") -> list[str]:
  """Write `notes` round-robin into `num_shards` TFRecord shards of `tf.train.Example`.

  Each example has the features of the corpus builder's output (`text`,
  `note_id`, `subject_id`, `source`, `category`), so vocabulary code reads these
  shards exactly like a real corpus.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, f"{split}.tfrecord-{i:05d}-of-{num_shards:05d}")
           for i in range(num_shards)]
  writers = [tf.io.TFRecordWriter(p) for p in paths]
  try:
    for i, text in enumerate(notes):
      feature = {
          "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode("utf-8")])),
          "note_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(i).encode()])),
          "subject_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i // 3])),
          "source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"own"])),
          "category": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Nursing"])),
      }
      example = tf.train.Example(features=tf.train.Features(feature=feature))
      writers[i % num_shards].write(example.SerializeToString())
  finally:
    for w in writers:
      w.close()
  return paths


# Each DEID tag and the newline is placed in these contexts: alone, at the
# start, after a space, at a line start, glued to punctuation and to words,
# doubled, after a tab and after a space run.
TAG_CONTEXTS = ("{t}", "{t} seen", "Dr. {t} saw", "x\n{t}\ny", "({t}).", "word{t}word", "{t}{t}",
                "\t{t}", "a   {t}", "{t}\n", "a {t}", "[{t}]", "{t},{t};")

ROUNDTRIP_STRINGS = (
    "BP 120/80\nHR 88\tRR 16",
    "Temp {38.5} ~ 39 C; O2 sat ~95%",
    "Meds:\n\t1. Metformin 500 mg PO BID\n\t2. Lisinopril 10 mg daily",
    "  indented line\n\n\nthree newlines before",
    "trailing spaces   \nand tabs\t\t",
    "Na    140   K   4.1   Cl   102",
    "Pt c/o pain ~ 7/10, {severe} <5 mm> x2 @ 08:00 #3 $20 ^ | \\ ` =",
    "café, naïve, Größe, señor, Ørsted, Žilina",
    "dose 5 µg, temp 38 °C, ½ tab, ﬁbrosis, １２ mg, \u00a0non-breaking space",
    "\u201cquoted\u201d \u2013 en dash \u2014 em dash \u2022 bullet \u2192 arrow \u2264 3",
    "Chinese 患者 and emoji \U0001F600 and Greek αβγ",
    "\r\nwindows line\r\nend",
    "",
    " ",
    "\n",
    "glued<extra>text and literal \u2581 block",
    "_" * 78 + "\n" + "-" * 40 + "\n" + "=" * 33 + " 1000000 mg ... !!! ******",
    "Plt 100000  WBC 10000.00  haha abab abababab",
)


def roundtrip_fixture() -> list[str]:
  """Return clinical strings plus every DEID tag and the newline in every `TAG_CONTEXTS` context."""
  strings = list(ROUNDTRIP_STRINGS)
  for tag in (*DEID_TAGS, "\n"):
    strings += [context.format(t=tag) for context in TAG_CONTEXTS]
  strings.append(" ".join(f"{tag} and" for tag in DEID_TAGS))
  return strings
