"""The words an explanation may use about movement, and which measured descriptor bands make them true.

``grounding`` reads explanations with this table. Three kinds of entries:
- template terms, generated from ``descriptor_bands`` (the words of every phrase the descriptors
  produce, e.g. "slow walk" -> speed in band ``speed.slow``), so our own phrases always parse;
- paraphrases (below): a regex and the bands that support it, several descriptors allowed when
  a word covers more than one ("hunched" = trunk leaning forward or head lowered);
- unobservable terms: what a skeleton cannot show (face, voice, fingers, breathing) -- always
  unsupported;
- micro-gesture terms (``MG_TERMS``: "touched the face twice", "shrugs"), judged against a
  detector's ``MGResult`` when the check is given one, and then matched before everything else
  (so "touched the face" is an MG claim, not the unobservable face). Without a result they are
  not read, and the other entries judge those words as before.
Matching is case-insensitive; earlier entries win where spans overlap, so specific wordings come
before generic ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from bodytalk.model.skeleton.descriptor_bands import SPECS
from bodytalk.model.skeleton.microgestures import VOCABULARY as MG_VOCABULARY

_PRONOUN = r"(?:the |his |her |their |its |both |one |a )?"


@dataclass(frozen=True)
class Term:
    pattern: re.Pattern
    options: tuple[tuple[str, tuple[str, ...]], ...]   # (descriptor, band keys): any one makes it true


def _term(alternatives: list[str], bands: str) -> Term:
    """Whole-word ``alternatives`` (regexes); ``bands``: space-separated band keys that make them true."""
    by_name: dict[str, list[str]] = {}
    for key in bands.split():
        name = key.split(".")[0]
        SPECS[name].band_by_key(key)                      # fails at import on a typo
        by_name.setdefault(name, []).append(key)
    pattern = re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)
    return Term(pattern, tuple((n, tuple(k)) for n, k in by_name.items()))


def _template_terms() -> list[Term]:
    """One term per band: its template's words before any number or parenthesis."""
    terms = []
    for spec in SPECS.values():
        for band in spec.bands:
            words = band.template.split("(")[0].split("{")[0].strip()
            words = re.sub(r"\s+by$", "", words)             # "slowing down by {a}" -> "slowing down"
            terms.append(_term([re.escape(words)], band.key))
    return sorted(terms, key=lambda t: -len(t.pattern.pattern))   # longest first


_WALK = r"(?:walk|walks|walking|walked|gait|pace|steps?|strides?|striding)"
_MOVE = r"(?:movements?|motions?)"
_BEND = r"(?:lean|leans|leaning|leaned|tilt|tilts|tilting|tilted|bend|bends|bending|bent)"
PARAPHRASES: list[Term] = [
    # travel speed
    _term([r"in place", r"stationary", r"stands? in one spot"], "speed.in_place"),
    _term([rf"slow(?:ly)?[ -]{_WALK}", rf"{_WALK} slowly", r"stroll\w*", r"shuffl\w*", r"amble[sd]?", r"ambling"],
          "speed.shifting speed.slow"),
    _term([rf"(?:fast|brisk|hurried|quick|rapid)(?:ly)?[ -]{_WALK}",
           rf"{_WALK} (?:quickly|fast|briskly|rapidly|hurriedly)", r"hurr(?:y|ies|ying|ied)"],
          "speed.fast speed.running"),
    _term([r"run|runs|running|ran|jog|jogs|jogging|sprint\w*|dash(?:es|ing)?"], "speed.fast speed.running"),
    _term([_WALK], "speed.slow speed.walking speed.fast"),
    # changes over the window
    _term([r"slow(?:s|ing)? down", r"decelerat\w*", r"com(?:es|ing) to a (?:stop|halt)"], "speed_change.slowing"),
    _term([r"speed(?:s|ing)? up", r"accelerat(?:es|ing)", r"pick(?:s|ing)? up (?:the )?(?:pace|speed)"],
          "speed_change.faster"),
    _term([r"(?:constant|even|unchanging) (?:speed|pace)"], "speed_change.steady"),
    _term([r"(?:calm|calms|calming|settles?|settling|winds?|winding) down"], "activity_change.calming"),
    _term([r"intensif\w*", r"escalat\w*"], "activity_change.intensifying"),
    _term([r"open(?:s|ing)? up"], "expansion_change.opening"),
    _term([r"withdraw\w*", r"clos(?:es|ing) up", rf"pull(?:s|ing)? {_PRONOUN}arms in"], "expansion_change.closing"),
    _term([r"(?:head|chin) (?:drops|sinks|sinking|falls|falling)"], "head_pitch_change.dropping"),
    # head
    _term([rf"(?:shak(?:es|ing)|turn(?:s|ing)|jerk(?:s|ing)|toss(?:es|ing)) {_PRONOUN}head", r"nod(?:s|ding)?",
           r"head (?:moves|moving|turns|turning) (?:quickly|rapidly|sharply|fast|abruptly)"],
          "head_speed.slight head_speed.quick"),
    _term([r"head (?:is |held |kept |stays |remains )?(?:steady|still|motionless)"], "head_speed.steady"),
    _term([r"head (?:is |held |kept |hangs |hanging |hung )?(?:down|lowered|bowed|bent|drooping|dropped|hung|low)",
           rf"(?:bows?|bowing|lowers?|lowering|drops?|dropping|hangs?|hanging) {_PRONOUN}head",
           r"(?:bowed|lowered|drooping|hanging) head", r"chin (?:down|tucked|lowered)",
           r"look(?:s|ing)? down(?:ward)?", r"downcast", r"head-down"], "head_pitch.lowered"),
    _term([r"head (?:is |held |kept )?(?:raised|up|high|lifted|tilted back|thrown back)",
           rf"(?:raises?|raising|lifts?|lifting|tilts?|tilting|throws?|throwing) {_PRONOUN}head(?: back)?",
           r"chin (?:up|raised|lifted)", r"look(?:s|ing)? up(?:ward)?"], "head_pitch.raised"),
    _term([r"head (?:is |held )?level", r"look(?:s|ing)? (?:straight )?ahead"], "head_pitch.level"),
    # "upright" alone is the trunk's (below); said of the head it is the head's pitch
    _term([r"head (?:is |held |kept |stays )?(?:\w+ )?(?:upright|erect)", r"(?:upright|erect) head"],
          "head_pitch.level head_pitch.raised"),
    # trunk
    _term([rf"{_BEND} (?:\w+ )?back(?:ward|wards)?"], "trunk_lean.back"),
    _term([rf"(?:{_BEND}|pitch(?:es|ed|ing)?) (?:\w+ )?forwards?", r"forward lean"], "trunk_lean.forward"),
    _term([r"upright", r"(?:straight|erect) (?:back|posture|trunk|spine|torso)",
           r"stand(?:s|ing)? (?:tall|straight|erect)"], "trunk_lean.upright"),
    _term([r"chest (?:out|puffed(?: out)?|thrust out)", r"puffed[- ]out chest"], "trunk_lean.upright trunk_lean.back"),
    _term([r"(?:hunch|slump|slouch|stoop|droop)(?:es|s|ed|ing|y)?", r"bow(?:s|ed|ing)?"],
          "trunk_lean.forward head_pitch.lowered"),
    # arms and hands
    _term([rf"(?:arms?|hands?) (?:held |kept |pulled )?(?:close|tight|near)(?: to)? {_PRONOUN}(?:body|torso|chest|sides?)",
           r"close to the body", r"closed posture", r"arms? (?:tucked|folded|crossed)"], "expansion.close"),
    _term([r"arms? (?:spread|stretched|flung|thrown|held|opened) (?:\w+ )?(?:wide|out|open|apart)", r"open posture",
           rf"(?:wide|open|expansive|large|big|broad|sweeping) (?:arm )?(?:gestures?|{_MOVE})"],
          "expansion.slight expansion.wide"),
    _term([rf"(?:arms?|hands?) (?:are |is )?(?:raised|up|lifted|overhead|in the air"
           rf"|above {_PRONOUN}(?:head|shoulders?))",
           rf"(?:raises?|raising|lifts?|lifting|throws?|throwing) (?:up )?{_PRONOUN}(?:arms?|hands?)",
           r"(?:raised|lifted) (?:arms?|hands?)"], "arm_height.shoulder arm_height.raised"),
    _term([rf"(?:arms?|hands?) (?:\w+ )?(?:hang|hangs|hanging|dangl\w*|limp|down|lowered|at {_PRONOUN}sides?"
           rf"|by {_PRONOUN}sides?)", r"limp arms?"], "arm_height.hanging"),
    _term([r"hands? at (?:chest|waist|hip|belly) (?:height|level)"], "arm_height.mid"),
    _term([rf"(?:fast|quick|rapid|sharp|swift) (?:hand |arm )?(?:{_MOVE}|gestures?)",
           r"(?:hands?|arms?) (?:move|moves|moving) (?:fast|quickly|rapidly)", r"punch\w*", r"strik(?:e|es|ing)",
           r"flail\w*", rf"swing(?:s|ing)? {_PRONOUN}arms?"], "hand_speed.brisk hand_speed.fast"),
    _term([r"slow (?:hand |arm )?gestures?", r"(?:hands?|arms?) (?:move|moves|moving) slowly"],
          "hand_speed.still hand_speed.slow"),
    _term([r"hands? (?:are |is )?(?:\w+ )?(?:still|at rest|resting|motionless)"], "hand_speed.still"),
    _term([rf"(?:only|mainly|mostly) {_PRONOUN}left (?:arm|hand)"], "arm_asymmetry.left"),
    _term([rf"(?:only|mainly|mostly) {_PRONOUN}right (?:arm|hand)"], "arm_asymmetry.right"),
    _term([r"asymmetric(?:al|ally)?", r"one[- ]sided"], "arm_asymmetry.left arm_asymmetry.right"),
    _term([r"symmetric(?:al|ally)?", r"(?:both arms|arms) (?:move |moving )?(?:equally|in sync|together|alike)"],
          "arm_asymmetry.equal"),
    # feet
    _term([r"feet (?:stay |remain |firmly )?(?:planted|still|not moving)"], "foot_speed.planted"),
    _term([r"kick\w*", r"stamp\w*", r"stomp\w*"], "foot_speed.moving foot_speed.fast"),
    # overall quality
    _term([r"(?:barely|hardly) (?:moves|moving)"], "activity.none activity.low"),
    _term([rf"slow {_MOVE}", r"mov(?:es|ing) slowly", r"lethargic\w*", r"sluggish\w*",
           rf"(?:subdued|restrained|minimal|small|limited) (?:{_MOVE}|gestures?)"], "activity.none activity.low"),
    _term([r"vigorous\w*", r"energetic\w*", r"lively", r"animated", r"agitated",
           rf"(?:fast|quick|rapid|intense) {_MOVE}", r"mov(?:es|ing) (?:quickly|fast|rapidly|energetically)"],
          "activity.moderate activity.high"),
    _term([r"jerk(?:y|ily|iness)", r"abrupt(?:ly)?", r"staccato", rf"(?:sudden|erratic|sharp) {_MOVE}"],
          "jerk.abrupt jerk.jerky"),
    _term([r"smooth(?:ly|ness)?", r"fluid(?:ly|ity)?", r"flowing", r"graceful(?:ly)?"], "jerk.smooth"),
    _term([r"compact", r"curled up", r"huddled", r"mak(?:es|ing) (?:him|her|them)sel(?:f|ves) small"],
          "volume.compact expansion.close"),
    _term([r"tak(?:es|ing) up (?:a lot of )?space"], "volume.expansive"),
    _term([r"bounc(?:y|ing|es|ily)", r"spring(?:y|iness)", r"hop(?:s|ping)?", r"skip(?:s|ping)?", r"jump(?:s|ing)?"],
          "bounce.moderate bounce.bouncy"),
    _term([r"no bounce", r"(?:level|flat|gliding) (?:gait|walk|steps?)"], "bounce.level"),
    _term([r"trembl\w*", r"shak(?:y|ing|es|iness)", r"quiver\w*", r"shiver\w*", r"tremors?", r"jitter\w*"],
          "tremor.slight tremor.trembling"),
    _term([r"rhythmic\w*", r"periodic\w*", r"repetitive\w*", r"regular (?:rhythm|cadence|beat|tempo)",
           r"danc(?:e|es|ing)"], "tempo.rhythmic"),
    _term([rf"(?:irregular|arrhythmic) (?:rhythm|timing|pace|{_MOVE})"], "tempo.none"),
    _term([r"paus(?:es|ing)", r"hesitat\w*"], "stillness.pausing stillness.still"),
    _term([r"(?:constantly|continuously|restlessly) (?:moving|in motion)", r"restless\w*", r"fidget\w*"],
          "stillness.moving"),
    _term([r"(?:stands?|standing|stays?|staying|remains?|remaining|keeps?|is) (?:\w+ )?still", r"motionless",
           r"frozen", r"freez(?:es|ing)", r"immobile"], "stillness.still"),
]
TEMPLATE_TERMS: list[Term] = _template_terms()
TERMS: list[Term] = TEMPLATE_TERMS + PARAPHRASES

_UNOBSERVABLE = (
    ([r"smil\w*", r"grin\w*", r"frown\w*", r"laugh\w*", r"scowl\w*", r"pout\w*", r"blush\w*", r"wink\w*",
      r"facial", r"face"], "facial expression cannot be seen in body joints"),
    ([r"cry|cries|crying|cried", r"tears?|tearful", r"weep\w*", r"sob|sobs|sobbing"],
     "crying cannot be seen in body joints"),
    ([r"eyes?|eyebrows?|brows?|mouth|lips?|teeth|jaw", r"gaz(?:e|es|ing)|star(?:e|es|ing)|glar(?:e|es|ing)"],
     "eyes and mouth are not in the skeleton"),
    ([r"voice", r"shout\w*", r"yell\w*", r"scream\w*", r"sigh\w*", r"whisper\w*", r"talk\w*", r"speak\w*",
      r"mutter\w*", r"groan\w*", r"moan\w*"], "sound is not measured"),
    ([r"fists?", r"clench\w*", r"fingers?", r"thumbs?", r"knuckles?"], "the skeleton has no finger joints"),
    ([r"breath\w*", r"heart ?(?:rate|beat)", r"pulse", r"sweat\w*", r"tense", r"tension"],
     "physiology is not measured"),
)
UNOBSERVABLE: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE), why) for words, why in _UNOBSERVABLE]


@dataclass(frozen=True)
class MGTerm:
    pattern: re.Pattern      # group "count": a stated number of repetitions ("twice"), if any
    mg: str                  # the micro-gesture it claims


_TOUCH = r"(?:touch|rub|scratch|strok|tap|pat)(?:es|ed|ing|s|e|bed|bing|ped|ping|ted|ting)?"
_MG_WORDS: dict[str, list[str]] = {
    "fold_arms": [rf"(?:fold|cross)(?:s|es|ed|ing)? {_PRONOUN}arms", r"arms (?:are |were |stay )?(?:folded|crossed)"],
    "hands_on_hips": [rf"(?:puts?|putting|placed|places|placing|rests?|rested|resting) {_PRONOUN}hands? on "
                      rf"{_PRONOUN}hips?", rf"hands? on {_PRONOUN}hips?", r"akimbo"],
    "touch_face": [rf"{_TOUCH} {_PRONOUN}(?:face|cheeks?|chin|nose|mouth|forehead|eyes?)",
                   rf"hands? (?:to|on) {_PRONOUN}(?:face|cheeks?|chin)"],
    "cover_face": [rf"(?:cover|hid|hide|hiding|hides|bur(?:y|ies|ied|ying))(?:s|ed|ing)? {_PRONOUN}face",
                   rf"face in {_PRONOUN}hands"],
    "touch_head": [rf"{_TOUCH} {_PRONOUN}(?:head|hair|scalp|temples?)"],
    "touch_neck": [rf"{_TOUCH} {_PRONOUN}(?:neck|throat|nape)"],
    "rub_hands": [rf"(?:rub|wring)(?:s|bed|bing|ing|ed)? {_PRONOUN}hands(?: together)?",
                  r"hand[- ]?(?:rubbing|wringing)"],
    "cross_hands": [rf"(?:clasp|cross|fold|hold|held|join)(?:s|es|ed|ing)? {_PRONOUN}hands(?: together)?(?: in front)?",
                    r"hands (?:clasped|crossed|joined|held together)"],
    "shrug": [r"shrug(?:s|ged|ging)?", rf"(?:raises?|raised|raising|lifts?|lifted|lifting) {_PRONOUN}shoulders"],
    "lean_forward": [r"lean(?:s|ed)? (?:in|forward)\b", r"leant (?:in|forward)\b"],
    "lean_back": [r"lean(?:s|ed)? back\b", r"leant back\b"],
    "sway": [r"sway(?:s|ed|ing)?", r"rock(?:s|ed|ing)? (?:back and forth|to and fro|from side to side)"],
    "fidget": [r"fidget(?:s|ed|ing|y)?"],
    "turn_away": [r"turn(?:s|ed|ing)? away"],
}
_COUNT_WORDS = {"once": 1, "twice": 2, "thrice": 3, "two": 2, "three": 3, "four": 4, "five": 5}
_COUNT = r"(?:\s+(?P<count>once|twice|thrice|(?:\d+|two|three|four|five) times))?"


def stated_count(words: str) -> int:
    """"twice" -> 2, "3 times" -> 3, "three times" -> 3 (what the ``count`` group of an MG term holds)."""
    first = words.lower().split()[0]
    return int(first) if first.isdigit() else _COUNT_WORDS[first]


MG_TERMS: list[MGTerm] = [MGTerm(re.compile(r"\b(?:" + "|".join(words) + r")" + _COUNT + r"\b", re.IGNORECASE), mg)
                          for mg, words in _MG_WORDS.items()]
if set(_MG_WORDS) != set(MG_VOCABULARY):    # fails at import when the vocabulary changes
    raise ValueError(f"MG claim words cover {sorted(_MG_WORDS)}, the vocabulary is {sorted(MG_VOCABULARY)}")
