"""A deterministic, rule-based stand-in for the VIZOCHOK agent.

It exists so that every client path (streaming, multi-bubble turns, product cards, quick replies, checklists,
cart events, restored sessions) can be exercised offline and reproducibly. Given the same session state and the
same input it always produces the same frames, including the uneven ``text_delta`` split, so tests can assert
on exact output.

The assistant only builds frames; sending, pacing, timeouts and locks belong to :mod:`chat.sandbox.server`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from chat.vizochok import actions
from chat.vizochok.messages import (
    Action,
    CartChanged,
    CartItem,
    ChecklistItem,
    ErrorMessage,
    Event,
    IngredientChecklist,
    ProductCards,
    QuickReplies,
    QuickReply,
    ResponseComplete,
    Status,
    TextDelta,
    TextEnd,
    UserMessage,
)

from .catalog import MAX_QUANTITY, Catalog, Product, detect_language, stem, words

#: Status codes the sandbox sends (``status.code``); clients localize them (reference §5).
STATUS_THINKING = "thinking"
STATUS_SEARCHING = "searching"
STATUS_CHECKING_PRICES = "checking_prices"
STATUS_UPDATING_CART = "updating_cart"
STATUS_PREPARING_RECIPE = "preparing_recipe"
STATUS_CODES = (
    STATUS_THINKING,
    STATUS_SEARCHING,
    STATUS_CHECKING_PRICES,
    STATUS_UPDATING_CART,
    STATUS_PREPARING_RECIPE,
)

Frame = (
    Status | TextDelta | TextEnd | ProductCards | QuickReplies | IngredientChecklist | Event | CartChanged
    | ResponseComplete | ErrorMessage
)  # fmt: skip

CENT = Decimal("0.01")


class InvalidInput(ValueError):
    """A ``message``/``action`` that parsed but makes no sense (empty text, unknown action kind): the server
    answers ``invalid_json``, as the real backend does for schema failures (reference §10.2)."""


# --------------------------------------------------------------------------------------------------------------
# Requests: a validated user input


@dataclass(frozen=True, slots=True)
class TextRequest:
    text: str
    #: Typed text detects the language; a quick-reply value keeps the session's language.
    detect_language: bool = True


@dataclass(frozen=True, slots=True)
class AddRequest:
    sku: str
    quantity: Decimal | None


@dataclass(frozen=True, slots=True)
class RemoveRequest:
    sku: str


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    sku: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class ChecklistRequest:
    ids: tuple[str, ...]


Request = TextRequest | AddRequest | RemoveRequest | UpdateRequest | ChecklistRequest


def read_input(frame: UserMessage | Action) -> Request:
    """Validate a client frame into a request; raises :class:`InvalidInput`."""
    if isinstance(frame, UserMessage):
        if not frame.text.strip():
            raise InvalidInput("empty text")
        return TextRequest(frame.text.strip())
    return _read_action(frame.action, frame.payload)


def _read_action(kind: str, payload: Mapping[str, Any]) -> Request:
    if kind == actions.ADD_TO_CART:
        quantity = payload.get("quantity")
        return AddRequest(_sku(payload), None if quantity is None else _number(quantity))
    if kind == actions.REMOVE_FROM_CART:
        return RemoveRequest(_sku(payload))
    if kind == actions.UPDATE_QUANTITY:
        return UpdateRequest(_sku(payload), _number(payload.get("quantity")))
    if kind == actions.QUICK_REPLY:
        value = payload.get("value")
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput("quick_reply needs a non-empty string value")
        return TextRequest(value.strip(), detect_language=False)
    if kind == actions.CHECKLIST_SUBMIT:
        items = payload.get("items")
        if not isinstance(items, list) or not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in items):
            raise InvalidInput("checklist_submit needs a list of item ids")
        return ChecklistRequest(tuple(str(item) for item in items))
    raise InvalidInput(f"unknown action {kind!r}")


def _sku(payload: Mapping[str, Any]) -> str:
    sku = payload.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise InvalidInput("a sku is required")
    return sku.strip()


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise InvalidInput("quantity must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidInput("quantity must be a number") from None
    if not number.is_finite():
        raise InvalidInput("quantity must be finite")
    return number


# --------------------------------------------------------------------------------------------------------------
# Session state (owned by the server, mutated by turns)


@dataclass
class Session:
    """Everything a conversation remembers across turns and reconnects."""

    conversation_id: str
    language: str = "uk"
    #: sku -> quantity, in the order items were first added.
    cart: dict[str, Decimal] = field(default_factory=dict)
    last_results: list[str] = field(default_factory=list)
    #: Unanswered UI frames (``quick_replies``/``ingredient_checklist``) re-sent after ``session_restored``.
    pending: list[Frame] = field(default_factory=list)
    last_activity: float = 0.0
    turns: int = 0
    busy: bool = False


# --------------------------------------------------------------------------------------------------------------
# Recipes


@dataclass(frozen=True, slots=True)
class Ingredient:
    key: str
    sku: str
    quantity: Decimal
    name_uk: str
    name_en: str
    checked: bool = True


@dataclass(frozen=True, slots=True)
class Recipe:
    key: str
    title_uk: str
    title_en: str
    servings: int
    triggers: tuple[str, ...]
    steps_uk: tuple[str, ...]
    steps_en: tuple[str, ...]
    ingredients: tuple[Ingredient, ...]

    def title(self, language: str) -> str:
        return self.title_uk if language == "uk" else self.title_en

    def item_id(self, ingredient: Ingredient) -> str:
        return f"{self.key}-{ingredient.key}"


def _i(key: str, sku: str, quantity: str, name_uk: str, name_en: str, checked: bool = True) -> Ingredient:
    return Ingredient(key, sku, Decimal(quantity), name_uk, name_en, checked)


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "borscht", "Український борщ", "Ukrainian borscht", 6,
        ("борщ", "борщу", "борщем", "borscht", "borsch", "borshch"),
        ("Зваріть бульйон з яловичини (1,5 год).", "Додайте картоплю й капусту.",
         "Обсмажте буряк, моркву й цибулю з томатною пастою, додайте в каструлю.",
         "Наприкінці — часник і кріп, подавайте зі сметаною."),
        ("Simmer the beef stock (1.5 h).", "Add potatoes and cabbage.",
         "Fry beetroot, carrot and onion with tomato paste, add to the pot.",
         "Finish with garlic and dill; serve with sour cream."),
        (_i("beef", "beef-001", "0.8", "Яловичина на кістці", "Beef on the bone"),
         _i("beet", "beet-001", "0.5", "Буряк", "Beetroot"),
         _i("cabbage", "cabbage-001", "0.5", "Капуста", "Cabbage"),
         _i("potato", "potato-001", "0.5", "Картопля", "Potatoes"),
         _i("carrot", "carrot-001", "0.2", "Морква", "Carrot"),
         _i("onion", "onion-001", "0.2", "Цибуля", "Onion"),
         _i("paste", "tomatopaste-001", "1", "Томатна паста", "Tomato paste"),
         _i("garlic", "garlic-001", "0.1", "Часник", "Garlic"),
         _i("dill", "dill-001", "1", "Кріп", "Dill"),
         _i("sourcream", "sourcream-001", "1", "Сметана", "Sour cream"),
         _i("salt", "salt-001", "1", "Сіль", "Salt", checked=False)),
    ),
    Recipe(
        "pancakes", "Млинці на молоці", "Milk pancakes (crêpes)", 4,
        ("млинці", "млинців", "млинцями", "млинчики", "млинчиків", "pancakes", "pancake", "crepes", "crêpes"),
        ("Збийте яйця з цукром і сіллю.", "Влийте молоко, поступово всипте борошно.",
         "Додайте трохи олії, дайте тісту постояти 15 хв.", "Смажте на гарячій пательні, змащуйте маслом."),
        ("Whisk the eggs with sugar and salt.", "Pour in the milk, then the flour little by little.",
         "Add a little oil and rest the batter for 15 min.", "Fry in a hot pan, brush with butter."),
        (_i("flour", "flour-001", "1", "Борошно", "Flour"),
         _i("milk", "milk-001", "1", "Молоко", "Milk"),
         _i("eggs", "eggs-001", "1", "Яйця", "Eggs"),
         _i("sugar", "sugar-001", "1", "Цукор", "Sugar"),
         _i("butter", "butter-001", "1", "Масло вершкове", "Butter"),
         _i("oil", "oil-001", "1", "Олія", "Sunflower oil", checked=False),
         _i("salt", "salt-001", "1", "Сіль", "Salt", checked=False)),
    ),
    Recipe(
        "greek-salad", "Грецький салат", "Greek salad", 2,
        ("грецький", "грецького", "салат", "салату", "greek", "salad"),
        ("Наріжте помідори, огірки й перець великими шматками.", "Додайте тонко нарізану червону цибулю й оливки.",
         "Зверху — скибка фети, полийте оливковою олією."),
        ("Cut tomatoes, cucumbers and pepper into chunks.", "Add thinly sliced red onion and olives.",
         "Top with a slab of feta and drizzle with olive oil."),
        (_i("tomatoes", "tomato-002", "0.5", "Помідори", "Tomatoes"),
         _i("cucumber", "cucumber-001", "0.4", "Огірки", "Cucumbers"),
         _i("pepper", "pepper-001", "0.3", "Перець болгарський", "Bell pepper"),
         _i("onion", "onion-002", "0.2", "Цибуля червона", "Red onion"),
         _i("feta", "feta-001", "1", "Сир фета", "Feta"),
         _i("olives", "olives-001", "1", "Оливки", "Olives"),
         _i("oil", "oil-002", "1", "Оливкова олія", "Olive oil", checked=False)),
    ),
    Recipe(
        "olivier", "Салат Олів'є", "Olivier salad", 6,
        ("олів'є", "олівье", "olivier"),
        ("Відваріть картоплю, моркву та яйця, остудіть.", "Наріжте кубиками з ковбасою та огірками.",
         "Додайте горошок, заправте майонезом."),
        ("Boil potatoes, carrots and eggs; let them cool.", "Dice them with the sausage and pickles.",
         "Add the peas and dress with mayonnaise."),
        (_i("potato", "potato-001", "0.5", "Картопля", "Potatoes"),
         _i("carrot", "carrot-001", "0.3", "Морква", "Carrots"),
         _i("eggs", "eggs-001", "1", "Яйця", "Eggs"),
         _i("sausage", "sausage-001", "0.4", "Ковбаса Докторська", "Doctor's sausage"),
         _i("pickles", "pickles-001", "1", "Огірки мариновані", "Pickles"),
         _i("peas", "peas-001", "1", "Горошок", "Green peas"),
         _i("mayo", "mayo-001", "1", "Майонез", "Mayonnaise")),
    ),
)  # fmt: skip

#: Words that pick a recipe, as stems; "салат"/"salad" alone means the Greek salad (listed first).
_RECIPE_TRIGGERS: tuple[tuple[frozenset[str], Recipe], ...] = tuple(
    (frozenset(stem(word) for word in recipe.triggers), recipe) for recipe in reversed(RECIPES)
)
_CHECKLIST_IDS: dict[str, tuple[Recipe, Ingredient]] = {
    recipe.item_id(ingredient): (recipe, ingredient) for recipe in RECIPES for ingredient in recipe.ingredients
}


# --------------------------------------------------------------------------------------------------------------
# Text-intent vocabulary (matched on lower-cased words)

_ADD = frozenset({"add", "buy", "put", "додай", "додати", "додайте", "докинь", "поклади", "купи", "візьми"})
_REMOVE = frozenset({"remove", "delete", "drop", "видали", "видалити", "видаліть", "прибери", "забери", "вилучи"})
_CLEAR = frozenset({"clear", "empty", "очисти", "очистити", "очистіть", "спорожни"})
_CART = frozenset({"cart", "basket", "кошик", "кошика", "кошику", "корзина", "корзину"})
_CHEAPER = frozenset({"cheaper", "cheapest", "cheap", "дешевше", "дешевші", "дешевий", "найдешевші", "дешевих"})
_GREETING = frozenset(
    {"hi", "hello", "hey", "help", "start", "привіт", "вітаю", "здрастуйте", "добрий", "допомога", "допоможи", "хелп"}
)
_EN_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBER_WORDS: dict[str, Decimal] = {
    **{w: Decimal(n) for n, w in enumerate(_EN_NUMBERS, 1)},
    **{w: Decimal(1) for w in ("один", "одна", "одну", "одне", "кілограм", "кіло", "kilo", "litre", "liter")},
    **{w: Decimal(2) for w in ("два", "дві")},
    "три": Decimal(3), "чотири": Decimal(4), "п'ять": Decimal(5), "шість": Decimal(6), "сім": Decimal(7),
    "вісім": Decimal(8), "дев'ять": Decimal(9), "десять": Decimal(10),
    "half": Decimal("0.5"), "пів": Decimal("0.5"), "півкіло": Decimal("0.5"),
}  # fmt: skip
_DIGITS = re.compile(r"(?<![\w-])(\d+(?:[.,]\d+)?)(?![\w-])")

UNITS = {"uk": {"pcs": "шт", "kg": "кг", "l": "л"}, "en": {"pcs": "pcs", "kg": "kg", "l": "l"}}


def _quantity_in(text: str) -> tuple[Decimal | None, str]:
    """The first quantity a text names (digits or a number word) and the text without it."""
    match = _DIGITS.search(text)
    if match:
        rest = text[: match.start()] + " " + text[match.end() :]
        return Decimal(match.group(1).replace(",", ".")), rest
    for word in words(text):
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word], " ".join(w for w in words(text) if w != word)
    return None, text


# --------------------------------------------------------------------------------------------------------------
# Formatting


NBSP = "\u00a0"


def fmt_number(value: Decimal, language: str) -> str:
    text = format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return text.replace(".", ",") if language == "uk" else text


def fmt_price(value: Decimal, language: str) -> str:
    """Hryvnias as the chat page writes them (chat.presentation.formatting.money): "1 234,50 ₴", "₴1,234.50".

    The page shows these replies beside its own prices; one format on one screen (issue 16). No Django here: the
    sandbox runs as a plain asyncio program too.
    """
    amount = f"{value.quantize(CENT):,.2f}"
    if language == "en":
        return f"₴{amount}"
    whole, cents = amount.split(".")
    return f"{whole.replace(',', NBSP)},{cents}{NBSP}₴"


def fmt_quantity(product: Product, quantity: Decimal, language: str) -> str:
    return f"{fmt_number(quantity, language)} {UNITS[language].get(product.unit, product.unit)}"


def _uk_plural(count: int, one: str, few: str, many: str) -> str:
    if count % 10 == 1 and count % 100 != 11:
        return one
    if 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        return few
    return many


def split_deltas(text: str, seed: str) -> list[str]:
    """Cut ``text`` into uneven 1–12 character chunks, the same way every time for the same seed."""
    rng = random.Random(seed)
    chunks: list[str] = []
    position = 0
    while position < len(text):
        size = rng.randint(1, 12)
        chunks.append(text[position : position + size])
        position += size
    return chunks


# --------------------------------------------------------------------------------------------------------------
# One turn's frames


class _Turn:
    """Collects a turn's frames in order; text blocks are split into deltas and closed with ``text_end``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.frames: list[Frame] = [Status(code=STATUS_THINKING)]
        self._blocks = 0

    @property
    def uk(self) -> bool:
        return self.session.language == "uk"

    def status(self, code: str) -> None:
        self.frames.append(Status(code=code))

    def say(self, text: str) -> None:
        seed = f"{self.session.turns}:{self._blocks}:{text}"
        self._blocks += 1
        self.frames.extend(TextDelta(delta=chunk) for chunk in split_deltas(text, seed))
        self.frames.append(TextEnd())

    def add(self, *frames: Frame) -> None:
        self.frames.extend(frames)

    def finish(self) -> list[Frame]:
        self.session.pending = [f for f in self.frames if isinstance(f, (QuickReplies, IngredientChecklist))]
        self.frames.append(ResponseComplete(conversation_id=self.session.conversation_id))
        return self.frames


# --------------------------------------------------------------------------------------------------------------
# The assistant


class Assistant:
    """Maps (session, request) to the frames of one turn; mutates the session (cart, results, language)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def respond(self, session: Session, request: Request) -> list[Frame]:
        session.turns += 1
        session.pending = []
        if isinstance(request, TextRequest) and request.detect_language:
            session.language = detect_language(request.text) or session.language
        turn = _Turn(session)
        if isinstance(request, TextRequest):
            self._text(turn, request.text)
        elif isinstance(request, AddRequest):
            self._add_sku(turn, request.sku, request.quantity)
        elif isinstance(request, RemoveRequest):
            self._remove_sku(turn, request.sku)
        elif isinstance(request, UpdateRequest):
            self._update_sku(turn, request.sku, request.quantity)
        else:
            self._checklist(turn, request.ids)
        return turn.finish()

    # Text intents ---------------------------------------------------------------------------------------------

    def _text(self, turn: _Turn, text: str) -> None:
        said = set(words(text))
        if said & _CLEAR and (said & _CART or len(said) == 1):
            self._clear(turn)
        elif said & _REMOVE:
            self._remove_text(turn, text)
        elif said & _ADD:
            self._add_text(turn, text)
        elif recipe := self._recipe_for(said):
            self._recipe(turn, recipe)
        elif said & _CHEAPER:
            self._cheaper(turn)
        elif said & _CART:
            self._show_cart(turn)
        else:
            self._search(turn, text, greeting=bool(said & _GREETING))

    @staticmethod
    def _recipe_for(said: Iterable[str]) -> Recipe | None:
        stems = {stem(word) for word in said}
        for triggers, recipe in _RECIPE_TRIGGERS:
            if stems & triggers:
                return recipe
        return None

    def _search(self, turn: _Turn, text: str, *, greeting: bool) -> None:
        turn.status(STATUS_SEARCHING)
        found = self.catalog.search(text)
        if not found:
            self._greet(turn) if greeting else self._nothing_found(turn, text)
            return
        turn.status(STATUS_CHECKING_PRICES)
        turn.session.last_results = [product.sku for product in found]
        self._show_products(turn, found, self._found_text(turn, text, found), cheaper_pill=True)

    def _found_text(self, turn: _Turn, query: str, found: list[Product]) -> str:
        lang = turn.session.language
        query = query if len(query) <= 60 else query[:57] + "…"
        lines = [f"- **{p.display_name(lang)}** — {self._price_text(p, lang)}" for p in found[:3]]
        if turn.uk:
            count = f"{len(found)} {_uk_plural(len(found), 'товар', 'товари', 'товарів')}"
            head = f"За запитом «{query}» знайшов {count}:"
            tail = "Натисніть «Додати», щоб покласти товар у кошик."
        else:
            head = f"I found {len(found)} product{'s' if len(found) != 1 else ''} for “{query}”:"
            tail = "Tap **Add** to put one in your cart."
        return "\n".join([head, "", *lines, "", tail])

    @staticmethod
    def _price_text(product: Product, lang: str) -> str:
        unit = "" if product.unit == "pcs" else f"/{UNITS[lang][product.unit]}"
        price = fmt_price(product.effective_price, lang) + unit
        if product.promo_price is None:
            return price
        was = fmt_price(product.price, lang)
        return f"{price} ({product.promo_label}, {'було' if lang == 'uk' else 'was'} {was})"

    def _show_products(self, turn: _Turn, products: list[Product], text: str, *, cheaper_pill: bool) -> None:
        turn.say(text)
        turn.add(ProductCards(items=tuple(self.catalog.item(p) for p in products)))
        turn.add(QuickReplies(replies=tuple(self._follow_ups(turn, products, cheaper_pill))))

    def _follow_ups(self, turn: _Turn, products: list[Product], cheaper_pill: bool) -> list[QuickReply]:
        lang = turn.session.language
        first = products[0]
        replies = []
        if cheaper_pill and len(products) > 1:
            replies.append(QuickReply("Дешевше", "дешевше") if turn.uk else QuickReply("Show cheaper", "cheaper"))
        label = "Додати в кошик" if turn.uk else "Add to cart"
        verb = "додай" if turn.uk else "add"
        replies.append(QuickReply(f"{label}: {first.display_name(lang)}", f"{verb} {first.sku}"))
        skus = {p.sku for p in products}
        for recipe in RECIPES:
            if any(ingredient.sku in skus for ingredient in recipe.ingredients):
                prefix = "Рецепт" if turn.uk else "Recipe"
                value = next(word for word in recipe.triggers if detect_language(word) == lang)
                replies.append(QuickReply(f"{prefix}: {recipe.title(lang)}", value))
                break
        return replies

    def _cheaper(self, turn: _Turn) -> None:
        turn.status(STATUS_CHECKING_PRICES)
        products = [p for sku in turn.session.last_results if (p := self.catalog.get(sku))]
        if not products:
            turn.say("Спершу знайдіть щось — тоді відсортую за ціною." if turn.uk else "Search for something first.")
            return
        products.sort(key=lambda p: p.effective_price)
        turn.session.last_results = [p.sku for p in products]
        lang = turn.session.language
        cheapest = products[0]
        text = (
            f"Від найдешевшого: **{cheapest.display_name(lang)}** — {self._price_text(cheapest, lang)}."
            if turn.uk
            else f"Cheapest first: **{cheapest.display_name(lang)}** at {self._price_text(cheapest, lang)}."
        )
        self._show_products(turn, products, text, cheaper_pill=False)

    def _greet(self, turn: _Turn) -> None:
        if turn.uk:
            turn.say(
                "Привіт! Я **Візочок** — допоможу знайти продукти, зібрати кошик і підказати рецепт.\n\n"
                "Спробуйте:\n- «молоко» або «яйця»\n- «додай два молока»\n- «рецепт борщу»"
            )
            replies = (
                QuickReply("Молоко", "молоко"),
                QuickReply("Рецепт борщу", "борщ"),
                QuickReply("Млинці", "млинці"),
            )
        else:
            turn.say(
                "Hi! I'm **Vizochok** — I can find groceries, fill your cart and suggest a recipe.\n\n"
                "Try:\n- “milk” or “eggs”\n- “add two milk”\n- “borscht recipe”"
            )
            replies = (QuickReply("Milk", "milk"), QuickReply("Borscht", "borscht"), QuickReply("Pancakes", "pancakes"))
        turn.add(QuickReplies(replies=replies))

    def _nothing_found(self, turn: _Turn, text: str) -> None:
        query = text if len(text) <= 60 else text[:57] + "…"
        if turn.uk:
            turn.say(f"На жаль, за запитом «{query}» нічого не знайшлося. Спробуйте: молоко, хліб, яйця, банани.")
        else:
            turn.say(f"Sorry, nothing matched “{query}”. Try: milk, bread, eggs, bananas.")

    def _show_cart(self, turn: _Turn) -> None:
        session, lang = turn.session, turn.session.language
        if not session.cart:
            turn.say("Кошик порожній." if turn.uk else "Your cart is empty.")
            return
        lines = []
        for sku, quantity in session.cart.items():
            product = self.catalog.get(sku)
            if product is not None:
                lines.append(f"- {product.display_name(lang)} × {fmt_quantity(product, quantity, lang)}")
        total = fmt_price(self._total(session), lang)
        head = "У кошику:" if turn.uk else "In your cart:"
        turn.say("\n".join([head, *lines, "", f"**{'Разом' if turn.uk else 'Total'}: {total}**"]))

    # Recipes ----------------------------------------------------------------------------------------------------

    def _recipe(self, turn: _Turn, recipe: Recipe) -> None:
        turn.status(STATUS_PREPARING_RECIPE)
        lang = turn.session.language
        steps = recipe.steps_uk if turn.uk else recipe.steps_en
        numbered = [f"{n}. {step}" for n, step in enumerate(steps, 1)]
        portions = (
            f"на {recipe.servings} {_uk_plural(recipe.servings, 'порцію', 'порції', 'порцій')}"
            if turn.uk
            else f"serves {recipe.servings}"
        )
        turn.say("\n".join([f"**{recipe.title(lang)}** ({portions})", "", *numbered]))
        items = []
        for ingredient in recipe.ingredients:
            product = self.catalog.get(ingredient.sku)
            items.append(
                ChecklistItem(
                    id=recipe.item_id(ingredient),
                    name=ingredient.name_uk if turn.uk else ingredient.name_en,
                    quantity=ingredient.quantity,
                    unit=product.unit if product else None,
                    sku=ingredient.sku,
                    checked=ingredient.checked,
                )
            )
        turn.add(IngredientChecklist(items=tuple(items), title=recipe.title(lang), servings=recipe.servings))
        turn.say(
            "Зніміть позначки з того, що вже є вдома, і натисніть «Додати в кошик»."
            if turn.uk
            else "Untick what you already have at home, then press **Add to cart**."
        )

    def _checklist(self, turn: _Turn, ids: tuple[str, ...]) -> None:
        chosen = [_CHECKLIST_IDS[item] for item in dict.fromkeys(ids) if item in _CHECKLIST_IDS]
        if not chosen:
            turn.say(
                "Нічого не вибрано — кошик без змін." if turn.uk else "Nothing was selected; the cart is unchanged."
            )
            return
        turn.status(STATUS_UPDATING_CART)
        changes: list[Frame] = []
        for _, ingredient in chosen:
            product = self.catalog.get(ingredient.sku)
            if product is not None:
                changes.extend(self._apply_add(turn.session, product, ingredient.quantity))
        total = fmt_price(self._total(turn.session), turn.session.language)
        count = len(chosen)
        if turn.uk:
            turn.say(
                f"Додав {count} {_uk_plural(count, 'інгредієнт', 'інгредієнти', 'інгредієнтів')} у кошик. "
                f"Разом: **{total}**."
            )
        else:
            turn.say(f"Added {count} ingredient{'s' if count != 1 else ''} to your cart. Total: **{total}**.")
        turn.add(*changes)

    # Cart -------------------------------------------------------------------------------------------------------

    def _add_text(self, turn: _Turn, text: str) -> None:
        quantity, rest = _quantity_in(text)
        product = self._product_in(rest)
        if product is None:
            self._unknown_product(turn, rest)
            return
        self._add(turn, product, quantity)

    def _product_in(self, text: str, among: Iterable[str] | None = None) -> Product | None:
        query = " ".join(w for w in words(text) if w not in _ADD | _REMOVE | _CART)
        found = self.catalog.search(query, limit=len(self.catalog.products))
        if among is not None:
            allowed = set(among)
            found = [p for p in found if p.sku in allowed] or found
        return found[0] if found else None

    def _add_sku(self, turn: _Turn, sku: str, quantity: Decimal | None) -> None:
        product = self.catalog.get(sku)
        if product is None:
            self._unknown_sku(turn, sku)
            return
        self._add(turn, product, quantity)

    def _add(self, turn: _Turn, product: Product, quantity: Decimal | None) -> None:
        session, lang = turn.session, turn.session.language
        quantity = product.min_quantity if quantity is None else quantity
        new_quantity = session.cart.get(product.sku, Decimal(0)) + quantity
        if self._refuse_quantity(turn, product, quantity, new_quantity):
            return
        turn.status(STATUS_UPDATING_CART)
        changes = self._apply_add(session, product, quantity)
        name, total = product.display_name(lang), fmt_price(self._total(session), lang)
        amount = fmt_quantity(product, quantity, lang)
        turn.say(
            f"Додав **{name}** ({amount}) у кошик. Разом: **{total}**."
            if turn.uk
            else f"Added **{name}** ({amount}) to your cart. Total: **{total}**."
        )
        turn.add(*changes)

    def _refuse_quantity(self, turn: _Turn, product: Product, quantity: Decimal, new_quantity: Decimal) -> bool:
        problem = product.quantity_problem(quantity) or product.quantity_problem(new_quantity)
        if problem is None:
            return False
        turn.say(self._quantity_text(problem, product, turn.session.language))
        return True

    @staticmethod
    def _quantity_text(problem: str, product: Product, lang: str) -> str:
        name = product.display_name(lang)
        minimum, step = (
            fmt_quantity(product, product.min_quantity, lang),
            fmt_quantity(product, product.quantity_step, lang),
        )
        limit = fmt_quantity(product, MAX_QUANTITY, lang)
        texts = {
            "not_positive": ("Кількість має бути більшою за нуль.", "The quantity must be greater than zero."),
            "below_minimum": (
                f"Мінімальна кількість для «{name}» — {minimum}.",
                f"The minimum for {name} is {minimum}.",
            ),
            "not_a_step": (f"«{name}» продається з кроком {step}.", f"{name} is sold in steps of {step}."),
            "quantity_exceeded": (f"Забагато: не більше {limit} одного товару.", f"That's too many: at most {limit}."),
        }
        uk, en = texts[problem]
        return (uk if lang == "uk" else en) + (" Кошик без змін." if lang == "uk" else " Your cart is unchanged.")

    def _apply_add(self, session: Session, product: Product, quantity: Decimal) -> list[Frame]:
        session.cart[product.sku] = session.cart.get(product.sku, Decimal(0)) + quantity
        return self._change(session, "item_selected", product, session.cart[product.sku])

    def _remove_text(self, turn: _Turn, text: str) -> None:
        product = self._product_in(text, among=turn.session.cart)
        if product is None:
            self._unknown_product(turn, text)
            return
        self._remove(turn, product)

    def _remove_sku(self, turn: _Turn, sku: str) -> None:
        product = self.catalog.get(sku)
        if product is None:
            self._unknown_sku(turn, sku)
            return
        self._remove(turn, product)

    def _remove(self, turn: _Turn, product: Product) -> None:
        session, lang = turn.session, turn.session.language
        name = product.display_name(lang)
        if product.sku not in session.cart:
            turn.say(f"«{name}» немає у кошику." if turn.uk else f"{name} is not in your cart.")
            return
        turn.status(STATUS_UPDATING_CART)
        del session.cart[product.sku]
        changes = self._change(session, "item_removed", product, None)
        total = fmt_price(self._total(session), lang)
        turn.say(
            f"Прибрав **{name}** з кошика. Разом: **{total}**."
            if turn.uk
            else f"Removed **{name}** from your cart. Total: **{total}**."
        )
        turn.add(*changes)

    def _update_sku(self, turn: _Turn, sku: str, quantity: Decimal) -> None:
        session, product = turn.session, self.catalog.get(sku)
        if product is None:
            self._unknown_sku(turn, sku)
            return
        lang = session.language
        if product.sku not in session.cart:
            name = product.display_name(lang)
            turn.say(f"«{name}» немає у кошику." if turn.uk else f"{name} is not in your cart.")
            return
        if self._refuse_quantity(turn, product, quantity, quantity):
            return
        turn.status(STATUS_UPDATING_CART)
        session.cart[product.sku] = quantity
        changes = self._change(session, "quantity_updated", product, quantity)
        name, total = product.display_name(lang), fmt_price(self._total(session), lang)
        amount = fmt_quantity(product, quantity, lang)
        turn.say(
            f"Тепер **{name}**: {amount}. Разом: **{total}**."
            if turn.uk
            else f"**{name}** is now {amount}. Total: **{total}**."
        )
        turn.add(*changes)

    def _clear(self, turn: _Turn) -> None:
        session = turn.session
        if not session.cart:
            turn.say("Кошик уже порожній." if turn.uk else "Your cart is already empty.")
            return
        turn.status(STATUS_UPDATING_CART)
        session.cart.clear()
        turn.say("Кошик очищено." if turn.uk else "Your cart is now empty.")
        turn.add(Event(name="cart_cleared"), CartChanged(action="cart_cleared", items=(), total=Decimal("0.00")))

    def _change(self, session: Session, action: str, product: Product, quantity: Decimal | None) -> list[Frame]:
        """``event`` then ``cart_changed`` for one cart operation (reference §6, cart turn order)."""
        details: dict[str, Any] = {"sku": product.sku, "name": product.name}
        if quantity is not None:
            details.update(quantity=quantity, price=product.effective_price)
        return [
            Event(name=action, data=details),
            CartChanged(
                action=action,
                items=self.cart_items(session),
                total=self._total(session),
                sku=product.sku,
                name=product.name,
                quantity=quantity,
                price=product.effective_price if quantity is not None else None,
            ),
        ]

    def _unknown_sku(self, turn: _Turn, sku: str) -> None:
        shown = sku if len(sku) <= 40 else sku[:37] + "…"
        turn.say(
            f"Не знайшов товар з кодом «{shown}». Спробуйте пошук за назвою."
            if turn.uk
            else f"I couldn't find a product with code “{shown}”. Try searching by name."
        )

    def _unknown_product(self, turn: _Turn, text: str) -> None:
        turn.say(
            "Не зрозумів, який саме товар. Напишіть, наприклад: «додай два молока»."
            if turn.uk
            else "I'm not sure which product you mean. Try, for example: “add two milk”."
        )

    # Cart views -------------------------------------------------------------------------------------------------

    def cart_items(self, session: Session) -> tuple[CartItem, ...]:
        """The whole cart as ``CartItem`` rows, in insertion order."""
        return tuple(
            product.to_cart_item(quantity)
            for sku, quantity in session.cart.items()
            if (product := self.catalog.get(sku)) is not None
        )

    def _total(self, session: Session) -> Decimal:
        return self.cart_total(session)

    def cart_total(self, session: Session) -> Decimal:
        """Sum of lines at the effective (promo-wins) price, rounded to kopiykas."""
        total = sum((item.line_total for item in self.cart_items(session)), Decimal(0))
        return total.quantize(CENT, rounding=ROUND_HALF_UP)


__all__ = [
    "RECIPES",
    "STATUS_CODES",
    "Assistant",
    "Frame",
    "InvalidInput",
    "Recipe",
    "Request",
    "Session",
    "read_input",
    "split_deltas",
]
