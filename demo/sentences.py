"""Training sentences, made offline: templates of everyday English with large slot vocabularies.

Slots draw from faker's en_US providers (names, cities, jobs, companies, streets, dates, numbers)
and from hand-written word lists, so the LM hears many different words in sentence-like contexts.
Templates alone teach a few thousand words in fifty frames; users type anything. With
`common_word_share` > 0 that share of sentences are instead strings of faker's 971 most common
English words (grammatical nonsense, but every sound of English in every order), so the LM must
read the phonemes rather than recall a template. Deterministic for a seed; a hash of the text
puts ~3 % in the held-out split.
"""

from __future__ import annotations

import hashlib
import random


NOUNS = """apple bag ball bank bed bell bench bird boat book bottle box bread bridge brush bucket
cake camera candle car card carpet chair cheese clock cloud coat coffee computer cup curtain desk
door dress drum egg engine fence field flag floor flower fork garden gate glass glove guitar hammer
hat horse house jacket key kettle kitchen ladder lamp letter lemon map market mirror moon mountain
needle newspaper notebook onion orange oven paint paper pencil piano picture pillow plate pocket
potato radio river road roof rope salt sandwich school shirt shoe shop sink soap sock spoon stamp
station stone street table teapot ticket tiger towel tower train tree truck umbrella village
violin wallet watch window wheel whistle wire yard bicycle blanket button castle cookie diamond
envelope feather forest hospital island jungle library museum ocean office pharmacy planet
restaurant rocket sandwich stadium theater tunnel valley volcano waterfall airport basket cabinet
dinosaur elephant giraffe kangaroo lighthouse microscope penguin pyramid robot scarf telescope
tomato tractor trumpet vacuum zebra""".split()
ADJECTIVES = """big small old new red blue green yellow bright dark warm cold quiet loud soft hard
heavy light clean dirty empty full fresh sweet bitter strange famous simple lovely ancient broken
careful cheerful clever curious dusty early elegant fancy gentle giant golden happy honest huge
lazy lucky modern narrow nervous polite proud rapid rare rough shiny silent smooth sturdy tiny
wooden brave calm eager fierce friendly grumpy hungry jolly kind mighty noisy patient shy sleepy
tired wise wild""".split()
VERBS_PAST = """opened closed found lost painted cleaned carried dropped fixed bought sold borrowed
washed moved packed counted checked wrapped repaired measured ordered delivered returned visited
noticed described photographed collected""".split()
FOODS = """soup pasta rice salad pizza noodles pancakes waffles curry chili stew porridge tacos
burritos dumplings sushi omelette lasagna risotto cereal toast yogurt muffins biscuits""".split()
ANIMALS = """cat dog rabbit hamster parrot turtle goat sheep cow pig duck goose owl fox wolf bear
deer squirrel mouse frog snake lizard dolphin whale shark monkey lion camel donkey""".split()
FEELINGS = """happy tired excited worried surprised confused hungry bored nervous proud calm
grateful curious sleepy sad relieved""".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
COLOURS = "red blue green yellow purple orange black white grey brown pink silver".split()
TIMES = ["this morning", "last night", "yesterday afternoon", "next week", "tomorrow evening",
         "last summer", "every weekend", "before lunch", "after dinner", "at midnight", "in the spring",
         "on the way home", "during the holidays", "early in the morning"]

TEMPLATES = [
    "My friend {name} works as a {job} in {city}.",
    "{name} bought a {adj} {noun} at the market {time}.",
    "The {adj} {animal} walked slowly across the {noun}.",
    "Please put the {noun} next to the {adj} {noun2}.",
    "We are meeting {name} at {company} on {day}.",
    "I left my {noun} on the {noun2} {time}.",
    "Have you ever seen a {colour} {animal} near the {noun}?",
    "{name} {verb} the {adj} {noun} and gave it to {name2}.",
    "The train to {city} leaves at {hour} o'clock.",
    "Our new office is on {street} in {city}.",
    "There are {number} {noun}s in the {adj} box.",
    "I feel {feeling} because the {noun} is still {adj}.",
    "Could you tell {name} that dinner is {food} tonight?",
    "The {adj} {noun} belongs to my neighbour {name}.",
    "{name} was born on {date} in {city}.",
    "On {day} we will cook {food} with {name}.",
    "Why is the {noun} so {adj} today?",
    "The {job} from {company} called about the {noun}.",
    "Last year {name} moved from {city} to {city2}.",
    "Do not forget to bring the {colour} {noun} {time}.",
    "A {adj} {animal} was sleeping under the {noun}.",
    "My favourite meal is {food} with {adj} {food2}.",
    "{name} thinks the {noun} looks {adj} in the {noun2}.",
    "The meeting with {company} starts at {hour} thirty.",
    "Turn left after the {noun} and walk to {street}.",
    "I {verb} {number} {noun}s for the party {time}.",
    "Is {name} still working as a {job}?",
    "The {colour} {noun} in the window costs {number} dollars.",
    "Everyone at {company} was {feeling} about the news.",
    "She said the {animal} ate all the {food}.",
    "When {name} arrived in {city}, it was raining.",
    "He wants to become a {job} when he grows up.",
    "This {noun} is too {adj} for the little {noun2}.",
    "Call me {time} if the {noun} is not {adj}.",
    "The children painted a {colour} {animal} on the {noun}.",
    "{name} and {name2} are going to {city} on {day}.",
    "We found an {adj2} {noun} behind the {noun2}.",
    "The {noun} and the {noun2} are both {colour}.",
    "My sister {name} teaches at a school in {city}.",
    "It takes {number} minutes to walk to the {noun}.",
    "I think the {adj} {job} lives on {street}.",
    "Somebody {verb} my {noun} {time}.",
    "Please send the {noun} to {company} before {day}.",
    "The {animal} in the garden looked very {feeling}.",
    "Would you like some {food} or a piece of {food2}?",
    "{name} {verb} a {adj} {noun} for the {job}.",
    "Our {noun} broke, so we borrowed one from {name}.",
    "The weather in {city} is {adj} in {month}.",
    "I read about a {adj} {animal} that lives near {city}.",
    "Thank you for the {colour} {noun}, {name}.",
]
ADJECTIVES_VOWEL = [a for a in ADJECTIVES if a[0] in "aeiou"]

# v2 (demo.data): what users type besides sentences. Short phrases and single words are where a
# model trained on sentences babbles most, so they get their own share of the data.
PHRASES = """Hello. | Hi there! | Good morning. | Good afternoon. | Good evening. | Good night. |
Thank you! | Thanks a lot. | Thank you very much. | You're welcome. | Excuse me. | I'm sorry. |
Please. | Yes. | No. | Okay. | Sure. | Of course. | Maybe. | Not yet. | Goodbye. | See you later. |
See you soon. | Take care. | Have a nice day. | How are you? | I'm fine, thanks. | Nice to meet you. |
What's your name? | Where are you? | What time is it? | Wait a moment. | Come in. | Let's go. |
Be careful. | Well done! | Congratulations! | Happy birthday! | Good luck. | Welcome back. |
Hold on. | Not at all. | I don't know. | I agree. | That's right. | Never mind. | Watch out! |
Help! | Stop! | Listen. | Look! | Cheers! | All right. | No problem. | Just a second. |
Call me back. | Turn it off. | Open the door. | Sit down, please. | Follow me. | Try again. |
It's done. | Coming soon. | Almost there. | Really? | Why not? | Who is it? | What happened? |
Are you sure? | Can I help you? | Is it ready? | Me too. | Good job. | Safe travels. |
Sounds good. | I'm on my way. | Enjoy your meal. | Bless you. | Pardon? | Excellent!""".replace("\n", " ")
PHRASES = [p.strip() for p in PHRASES.split("|")]
QUESTIONS = [
    "Where is the nearest {noun}?",
    "Can you help me carry this {noun}?",
    "What time does the {noun2} shop open on {day}?",
    "Have you seen my {adj} {noun}?",
    "Do you know where {name} put the {noun}?",
    "How much does the {colour} {noun} cost?",
    "Why did {name} leave so early {time}?",
    "Would you like to come to {city} with us?",
    "Is it going to rain {time}?",
    "Which {noun} do you want, the {adj} one or the {colour} one?",
    "Did you remember to feed the {animal}?",
    "When does the next train to {city} leave?",
    "Could you turn down the radio, please?",
    "Are we having {food} for dinner again?",
    "How long have you lived on {street}?",
    "What did {name} say about the {noun}?",
    "Who left the {noun} in the {noun2}?",
    "Shall we meet at the {noun} at {hour} o'clock?",
    "How was your trip to {city}?",
    "Can I borrow your {noun} until {day}?",
]
PROSE_TEMPLATES = [
    "I usually walk to work, but {time} I took the bus.",
    "The shop on the corner sells {food} and fresh {food2}.",
    "After dinner we sat outside and talked about {city}.",
    "It was so {adj} that nobody wanted to leave the house.",
    "{name} says the best way to learn is to make mistakes.",
    "We waited for almost an hour, and then the {noun} finally arrived.",
    "If you are not busy {time}, we could go for a walk.",
    "My phone battery died, so I could not call {name}.",
    "The weather changed quickly, and soon it started to snow.",
    "She keeps her keys in a small {colour} bowl by the door.",
    "Most people in our street know each other by name.",
    "He forgot his umbrella again and came home soaking wet.",
    "The {animal} next door barks every time the postman comes.",
    "Remember to switch off the lights when you leave the room.",
    "On weekends we like to cook {food} and watch old films.",
    "The new {noun} works much better than the old one.",
    "I will send you the details as soon as I get home.",
    "There was a long queue at the {noun2}, so we went somewhere else.",
    "Nobody expected the meeting to finish so early.",
    "The garden looks lovely now that the flowers are out.",
]
SINGLE_WORD_LISTS = (NOUNS, ADJECTIVES, ANIMALS, FOODS, COLOURS, DAYS, FEELINGS)


class SentenceMaker:
    def __init__(self, seed: int, common_word_share: float = 0.0):
        from faker import Faker  # the demo extra; the split (is_held_out) is needed without it

        self.common_word_share = common_word_share
        self.random = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)

    def slots(self) -> dict[str, str]:
        r, f = self.random, self.fake
        return {
            "name": f.first_name(), "name2": f.first_name(), "job": f.job().split(",")[0].lower(),
            "city": f.city(), "city2": f.city(), "company": f.company(), "street": f.street_name(),
            "day": r.choice(DAYS), "month": f.month_name(), "date": f.date(pattern="%B %d"),
            "hour": str(r.randint(1, 12)), "number": str(r.randint(2, 99)),
            "noun": r.choice(NOUNS), "noun2": r.choice(NOUNS), "adj": r.choice(ADJECTIVES),
            "adj2": r.choice(ADJECTIVES_VOWEL), "verb": r.choice(VERBS_PAST), "food": r.choice(FOODS),
            "food2": r.choice(FOODS), "animal": r.choice(ANIMALS), "feeling": r.choice(FEELINGS),
            "colour": r.choice(COLOURS), "time": r.choice(TIMES),
        }

    def sentence(self) -> str:
        """One or two template sentences (a second one on a third of draws, for longer audio), or
        common words."""
        if self.common_word_share and self.random.random() < self.common_word_share:
            return self.fake.sentence(nb_words=self.random.randint(5, 14))
        text = self.random.choice(TEMPLATES).format(**self.slots())
        if self.random.random() < 0.33:
            text += " " + self.random.choice(TEMPLATES).format(**self.slots())
        return text[0].upper() + text[1:]


class MixedSentenceMaker(SentenceMaker):
    """v2 data: everyday prose, questions, short phrases and single words, 1-30 words per item."""

    KINDS = (("word", 0.10), ("phrase", 0.15), ("question", 0.20), ("prose", 0.35), ("common", 0.20))

    def item(self) -> tuple[str, str]:
        """(kind, text)."""
        r = self.random
        kind = r.choices([k for k, _ in self.KINDS], [w for _, w in self.KINDS])[0]
        if kind == "word":
            pick = r.random()
            if pick < 0.25:
                word = self.fake.first_name()
            elif pick < 0.5:
                word = str(r.choice([r.randint(0, 20), r.randint(21, 100), r.randint(100, 9999)]))
            else:
                word = r.choice(r.choice(SINGLE_WORD_LISTS))
            text = word[0].upper() + word[1:] + r.choice([".", ".", "!", "?"])
        elif kind == "phrase":
            text = r.choice(PHRASES)
            if r.random() < 0.3:  # a name makes it a new phrase: "Thank you, Maria."
                text = text[:-1] + ", " + self.fake.first_name() + text[-1]
        elif kind == "question":
            text = r.choice(QUESTIONS).format(**self.slots())
        elif kind == "prose":
            text = r.choice(PROSE_TEMPLATES + TEMPLATES).format(**self.slots())
            for _ in range(r.choice([0, 0, 1, 2])):  # whole sentences added while within 30 words
                more = r.choice(PROSE_TEMPLATES + TEMPLATES).format(**self.slots())
                if len(text.split()) + len(more.split()) <= 30:
                    text += " " + more
        else:
            text = self.fake.sentence(nb_words=r.randint(3, 16))
        return kind, text[0].upper() + text[1:]


def is_held_out(text: str) -> bool:
    return hashlib.sha1(text.encode()).digest()[0] < 8  # ~3 %


# Template sentences the split keeps out of training: the domain the model knows, words it has
# heard, sentences it has not (bench_demo --text templates, tests/test_demo_model.py). No names:
# an ASR cannot spell them.
HELD_OUT_EXAMPLES = (
    "She said the goat ate all the pancakes.",
    "Please put the bucket next to the fancy planet.",
    "The children painted a silver bear on the bank.",
    "Thank you for the yellow carpet, Mark.",
    "He wants to become a designer when he grows up.",
    "This wallet is too full for the little tree.",
    "There are 34 towels in the hard box.",
    "I feel sad because the field is still small.",
)


if __name__ == "__main__":
    maker = SentenceMaker(0)
    for _ in range(10):
        print(maker.sentence())
