"""The sandbox's grocery catalog and its keyword search.

The sandbox needs a catalog that behaves like a real one for the paths a client must handle: Ukrainian names
with English twins, promo prices and labels, weighed goods with fractional steps, and a search that finds
"молока" as well as "молоко". Search is deliberately simple and deterministic (curated keywords plus suffix
stemming) so that tests can rely on exact results.

No Django imports: the sandbox runs as a plain asyncio program too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from chat.vizochok.messages import CartItem, ProductItem

#: Where product images live by default: a same-origin static path, so the app serves them itself.
DEFAULT_IMAGE_BASE = "/static/chat/sandbox/products/"

KG_STEP = Decimal("0.1")
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Product:
    """One catalog row, richer than a card: it carries category and search keywords."""

    sku: str
    name: str
    name_en: str
    brand: str
    price: Decimal
    category: str
    keywords: tuple[str, ...]
    unit: str = "pcs"
    quantity_step: Decimal = ONE
    min_quantity: Decimal = ONE
    promo_price: Decimal | None = None
    promo_label: str | None = None
    #: What the catalog says about the product (reference §17 ``ProductInput.description``), for a few of them.
    description: str | None = None

    @property
    def effective_price(self) -> Decimal:
        """What the customer pays per unit: the promo price wins (reference §8.2)."""
        return self.promo_price if self.promo_price is not None else self.price

    def display_name(self, language: str) -> str:
        return self.name if language == "uk" else self.name_en

    def quantity_problem(self, quantity: Decimal) -> str | None:
        """Why ``quantity`` cannot be ordered (a machine reason), or None when it is fine."""
        if not quantity.is_finite() or quantity <= 0:
            return "not_positive"
        if quantity < self.min_quantity:
            return "below_minimum"
        if quantity % self.quantity_step != 0:
            return "not_a_step"
        if quantity > MAX_QUANTITY:
            return "quantity_exceeded"
        return None

    def to_item(self, image_base: str = DEFAULT_IMAGE_BASE) -> ProductItem:
        return ProductItem(
            sku=self.sku,
            name=self.name,
            name_en=self.name_en,
            price=self.price,
            brand=self.brand,
            promo_price=self.promo_price,
            promo_label=self.promo_label,
            image_url=f"{image_base}{self.sku}.svg",
            unit=self.unit,
            quantity_step=self.quantity_step,
            min_quantity=self.min_quantity,
            description=self.description,
        )

    def to_cart_item(self, quantity: Decimal) -> CartItem:
        return CartItem(
            sku=self.sku,
            name=self.name,
            price=self.price,
            quantity=quantity,
            promo_price=self.promo_price,
            brand=self.brand,
            unit=self.unit,
        )


#: Largest quantity of one product the sandbox accepts (the merchant's ``quantity_exceeded``, reference §16).
MAX_QUANTITY = Decimal(50)


def _p(
    sku: str,
    name: str,
    name_en: str,
    brand: str,
    price: str,
    category: str,
    keywords: str,
    *,
    unit: str = "pcs",
    step: str = "1",
    minimum: str | None = None,
    promo: str | None = None,
    label: str | None = None,
    description: str | None = None,
) -> Product:
    """Compact row builder: weighed goods pass ``unit="kg", step="0.1"``."""
    return Product(
        sku=sku,
        name=name,
        name_en=name_en,
        brand=brand,
        price=Decimal(price),
        category=category,
        keywords=tuple(keywords.split()),
        unit=unit,
        quantity_step=Decimal(step),
        min_quantity=Decimal(minimum if minimum is not None else step),
        promo_price=Decimal(promo) if promo is not None else None,
        promo_label=label,
        description=description,
    )


PRODUCTS: tuple[Product, ...] = (
    # Dairy
    _p("milk-001", "Молоко 2,5% 900 г", "Milk 2.5% 900 g", "Галичина", "42.90", "dairy",
       "молоко молока молоку молоком молочко milk", promo="36.50", label="-15%",
       description="Пастеризоване коров'яче молоко з Галичини. Зберігати при +2…+6 °C."),
    _p("milk-002", "Молоко 3,2% 1 л", "Milk 3.2% 1 l", "Яготинське", "49.90", "dairy",
       "молоко молока молоку молоком milk"),
    _p("milk-003", "Молоко фермерське розливне", "Farm milk by the litre", "Ферма", "38.00", "dairy",
       "молоко молока молоком фермерське milk farm", unit="l", step="0.5", minimum="1",
       description="Незбиране молоко з ферми, розливається в день доставки."),
    _p("kefir-001", "Кефір 2,5% 900 г", "Kefir 2.5% 900 g", "Галичина", "44.50", "dairy",
       "кефір кефіру кефіром kefir"),
    _p("sourcream-001", "Сметана 20% 350 г", "Sour cream 20% 350 g", "Яготинська", "39.90", "dairy",
       "сметана сметани сметану сметаною sour cream"),
    _p("butter-001", "Масло вершкове 82% 200 г", "Butter 82% 200 g", "President", "89.90", "dairy",
       "масло масла маслом вершкове butter", promo="79.90", label="АКЦІЯ"),
    _p("cheese-001", "Сир твердий Гауда", "Gouda cheese", "Комо", "389.00", "dairy",
       "сир сиру сиром сири твердий гауда cheese gouda", unit="kg", step="0.1"),
    _p("feta-001", "Сир фета 200 г", "Feta cheese 200 g", "Пирятин", "72.00", "dairy",
       "сир сиру сиром фета фети фету cheese feta"),
    _p("cottage-001", "Сир кисломолочний 9% 350 г", "Cottage cheese 9% 350 g", "Галичина", "54.90", "dairy",
       "сир сиру сиром кисломолочний творог cottage cheese"),
    _p("yogurt-001", "Йогурт полуничний 260 г", "Strawberry yogurt 260 g", "Активіа", "32.50", "dairy",
       "йогурт йогурту йогурти йогуртів yogurt yoghurt", promo="16.25", label="2 за 1"),
    # Eggs
    _p("eggs-001", "Яйця курячі С1, 10 шт", "Chicken eggs C1, 10 pcs", "Ясенсвіт", "62.90", "eggs",
       "яйця яєць яйце яйцями яйцем яйце eggs egg"),
    _p("eggs-002", "Яйця перепелині, 20 шт", "Quail eggs, 20 pcs", "Перепілка", "54.00", "eggs",
       "яйця яєць перепелині eggs egg quail"),
    # Bakery
    _p("bread-001", "Хліб Український житній", "Ukrainian rye bread", "Київхліб", "28.50", "bakery",
       "хліб хліба хлібом хлібу житній bread rye"),
    _p("bread-002", "Батон нарізний", "Sliced white loaf", "Київхліб", "24.90", "bakery",
       "батон батона батоном хліб хліба bread loaf"),
    _p("bread-003", "Багет французький", "French baguette", "Кулиничі", "32.00", "bakery",
       "багет багета багетом хліб хліба bread baguette"),
    _p("flour-001", "Борошно пшеничне 1 кг", "Wheat flour 1 kg", "Київмлин", "34.90", "grocery",
       "борошно борошна борошном мука flour"),
    # Grocery
    _p("sugar-001", "Цукор білий 1 кг", "White sugar 1 kg", "Хмільницький", "39.50", "grocery",
       "цукор цукру цукром sugar"),
    _p("salt-001", "Сіль кухонна 1 кг", "Table salt 1 kg", "Артемсіль", "14.90", "grocery",
       "сіль солі сіллю salt"),
    _p("oil-001", "Олія соняшникова 0,9 л", "Sunflower oil 0.9 l", "Олейна", "67.90", "grocery",
       "олія олії олію олією соняшникова oil sunflower", promo="59.90", label="-12%"),
    _p("oil-002", "Олія оливкова Extra Virgin 0,5 л", "Extra virgin olive oil 0.5 l", "Borges", "289.00",
       "grocery", "олія олії олію оливкова olive oil"),
    _p("buckwheat-001", "Гречка ядриця 1 кг", "Buckwheat 1 kg", "Сто пудів", "64.90", "grocery",
       "гречка гречки гречку гречкою buckwheat"),
    _p("rice-001", "Рис довгозернистий 1 кг", "Long-grain rice 1 kg", "Августин", "72.50", "grocery",
       "рис рису рисом rice"),
    _p("pasta-001", "Спагеті 500 г", "Spaghetti 500 g", "Barilla", "69.90", "grocery",
       "макарони макаронів макаронами спагеті паста pasta spaghetti", promo="55.90", label="-20%"),
    _p("oats-001", "Пластівці вівсяні 800 г", "Rolled oats 800 g", "Козуб", "45.00", "grocery",
       "вівсянка вівсянки вівсяні пластівці oats oatmeal porridge"),
    _p("mayo-001", "Майонез Провансаль 350 г", "Provencal mayonnaise 350 g", "Щедро", "42.00", "grocery",
       "майонез майонезу майонезом mayonnaise mayo"),
    _p("peas-001", "Горошок зелений 420 г", "Canned green peas 420 g", "Bonduelle", "45.90", "canned",
       "горошок горошку горошком горох peas"),
    _p("pickles-001", "Огірки мариновані 720 г", "Pickled cucumbers 720 g", "Верес", "64.00", "canned",
       "огірки огірків мариновані солоні корнішони pickles pickled gherkins"),
    _p("olives-001", "Оливки без кісточки 300 г", "Pitted olives 300 g", "Iberica", "79.90", "canned",
       "оливки оливок оливками маслини olives"),
    _p("honey-001", "Мед квітковий 400 г", "Flower honey 400 g", "Бджілка", "129.00", "grocery",
       "мед меду медом honey"),
    _p("coffee-001", "Кава мелена 250 г", "Ground coffee 250 g", "Jacobs", "159.00", "drinks",
       "кава кави каву кавою coffee", promo="129.00", label="АКЦІЯ"),
    _p("tea-001", "Чай чорний, 100 пакетиків", "Black tea, 100 bags", "Greenfield", "119.00", "drinks",
       "чай чаю чаєм tea"),
    # Vegetables
    _p("potato-001", "Картопля молода", "Young potatoes", "Фермерське", "24.90", "vegetables",
       "картопля картоплі картоплю картоплею картопелька potato potatoes", unit="kg", step="0.1",
       minimum="0.5"),
    _p("carrot-001", "Морква", "Carrots", "Фермерське", "19.90", "vegetables",
       "морква моркви моркву морквою морквина carrot carrots", unit="kg", step="0.1"),
    _p("beet-001", "Буряк столовий", "Beetroot", "Фермерське", "17.50", "vegetables",
       "буряк буряка буряки буряків буряком бурячок beet beets beetroot", unit="kg", step="0.1"),
    _p("onion-001", "Цибуля ріпчаста", "Onions", "Фермерське", "16.90", "vegetables",
       "цибуля цибулі цибулю цибулею onion onions", unit="kg", step="0.1"),
    _p("onion-002", "Цибуля червона", "Red onions", "Фермерське", "34.90", "vegetables",
       "цибуля цибулі цибулю червона onion onions red", unit="kg", step="0.1"),
    _p("cabbage-001", "Капуста білокачанна", "White cabbage", "Фермерське", "14.50", "vegetables",
       "капуста капусти капусту капустою cabbage", unit="kg", step="0.1", minimum="0.5"),
    _p("tomato-001", "Помідори черрі 250 г", "Cherry tomatoes 250 g", "Теплиці Поділля", "59.90",
       "vegetables", "помідори помідорів помідор томати черрі tomato tomatoes cherry"),
    _p("tomato-002", "Помідори рожеві", "Pink tomatoes", "Херсонські", "89.90", "vegetables",
       "помідори помідорів помідор томати рожеві tomato tomatoes", unit="kg", step="0.1",
       promo="74.90", label="-17%"),
    _p("tomatopaste-001", "Томатна паста 70 г", "Tomato paste 70 g", "Чумак", "21.90", "grocery",
       "томатна паста пасти пасту tomato paste"),
    _p("cucumber-001", "Огірки свіжі", "Fresh cucumbers", "Фермерське", "69.90", "vegetables",
       "огірки огірків огірок огірка свіжі cucumber cucumbers", unit="kg", step="0.1"),
    _p("pepper-001", "Перець болгарський", "Bell peppers", "Фермерське", "119.00", "vegetables",
       "перець перцю перці болгарський pepper peppers", unit="kg", step="0.1"),
    _p("garlic-001", "Часник", "Garlic", "Фермерське", "149.00", "vegetables",
       "часник часнику часником garlic", unit="kg", step="0.1"),
    _p("dill-001", "Кріп, пучок", "Dill, bunch", "Фермерське", "15.00", "vegetables",
       "кріп кропу кропом зелень dill herbs"),
    _p("mushroom-001", "Печериці", "Champignon mushrooms", "Фермерське", "99.90", "vegetables",
       "печериці печериць гриби грибів mushroom mushrooms champignons", unit="kg", step="0.1"),
    # Fruit
    _p("banana-001", "Банани", "Bananas", "Еквадор", "54.90", "fruit",
       "банан банани бананів бананами banana bananas", unit="kg", step="0.1"),
    _p("apple-001", "Яблука Голден", "Golden apples", "Фермерське", "39.90", "fruit",
       "яблуко яблука яблук яблуками apple apples", unit="kg", step="0.1", promo="32.90", label="-18%"),
    _p("orange-001", "Апельсини", "Oranges", "Єгипет", "64.90", "fruit",
       "апельсин апельсини апельсинів orange oranges", unit="kg", step="0.1"),
    _p("lemon-001", "Лимони", "Lemons", "Туреччина", "89.00", "fruit",
       "лимон лимони лимонів лимоном lemon lemons", unit="kg", step="0.1"),
    _p("grape-001", "Виноград білий", "White grapes", "Молдова", "139.00", "fruit",
       "виноград винограду grape grapes", unit="kg", step="0.1"),
    # Meat and fish
    _p("chicken-001", "Філе куряче", "Chicken breast fillet", "Наша Ряба", "189.00", "meat",
       "курка курки курку куряче курятина філе chicken fillet breast", unit="kg", step="0.1",
       minimum="0.3"),
    _p("chicken-002", "Гомілка куряча", "Chicken drumsticks", "Наша Ряба", "119.00", "meat",
       "курка курки курку куряча гомілка гомілки chicken drumsticks", unit="kg", step="0.1",
       minimum="0.5", promo="99.00", label="АКЦІЯ"),
    _p("pork-001", "Свинина, лопатка", "Pork shoulder", "Глобино", "219.00", "meat",
       "свинина свинини свинину м'ясо мясо pork meat", unit="kg", step="0.1", minimum="0.3"),
    _p("beef-001", "Яловичина на кістці", "Beef on the bone", "Глобино", "279.00", "meat",
       "яловичина яловичини яловичину м'ясо мясо beef meat", unit="kg", step="0.1", minimum="0.5"),
    _p("sausage-001", "Ковбаса Докторська", "Doctor's sausage", "Глобино", "269.00", "meat",
       "ковбаса ковбаси ковбасу докторська sausage bologna", unit="kg", step="0.1"),
    _p("salmon-001", "Лосось, філе", "Salmon fillet", "Norven", "749.00", "fish",
       "лосось лосося лососем риба риби рибу salmon fish", unit="kg", step="0.1", minimum="0.2"),
    _p("herring-001", "Оселедець філе в олії 240 г", "Herring fillet in oil 240 g", "Норвен", "69.90", "fish",
       "оселедець оселедця оселедцем риба риби рибу herring fish"),
    # Drinks
    _p("water-001", "Вода мінеральна негазована 1,5 л", "Still mineral water 1.5 l", "Моршинська", "22.90",
       "drinks", "вода води воду водою негазована water still", promo="17.90", label="-22%"),
    _p("water-002", "Вода мінеральна газована 0,5 л", "Sparkling mineral water 0.5 l", "Боржомі", "49.90",
       "drinks", "вода води воду газована мінералка water sparkling"),
    _p("juice-001", "Сік апельсиновий 1 л", "Orange juice 1 l", "Sandora", "54.90", "drinks",
       "сік соку соки соків апельсиновий juice juices orange"),
    _p("juice-002", "Сік яблучний 1 л", "Apple juice 1 l", "Садочок", "42.90", "drinks",
       "сік соку соки соків яблучний juice juices apple"),
    # Sweets
    _p("chocolate-001", "Шоколад молочний 90 г", "Milk chocolate 90 g", "Roshen", "42.50", "sweets",
       "шоколад шоколаду шоколадка шоколадку chocolate", promo="34.90", label="-18%"),
    _p("cookies-001", "Печиво вівсяне 300 г", "Oat cookies 300 g", "Бісквіт-Шоколад", "38.90", "sweets",
       "печиво печива печивом cookies cookie biscuits"),
)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------
# Text analysis shared with the assistant

_WORD = re.compile(r"[a-z]+-\d{3}|[\w'’]+", re.IGNORECASE)
_CYRILLIC = re.compile(r"[а-яіїєґё]", re.IGNORECASE)
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)

# Longest first, so "ами" is tried before "и". Good enough for nouns in the catalog's vocabulary.
_UK_SUFFIXES = (
    "ами", "ями", "ові", "еві", "ого", "ому", "ими", "ої", "ій", "ий", "ів", "їв", "ам", "ям", "ах", "ях",
    "ом", "ем", "єм", "ою", "ею", "єю", "а", "я", "о", "е", "є", "у", "ю", "і", "и", "ь",
)  # fmt: skip


def words(text: str) -> list[str]:
    """Lower-cased words; SKUs such as ``milk-001`` stay whole, apostrophes stay inside (п'ять)."""
    return [match.group(0).lower().replace("’", "'") for match in _WORD.finditer(text)]


def stem(word: str) -> str:
    """Strip one inflection suffix, the same way for query and keywords, so their stems meet."""
    word = word.lower()
    if _CYRILLIC.search(word):
        for suffix in _UK_SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                return word[: -len(suffix)]
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("oes") and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def detect_language(text: str) -> str | None:
    """``uk`` for any Cyrillic, ``en`` for Latin letters, None when there is nothing to tell (e.g. "2")."""
    if _CYRILLIC.search(text):
        return "uk"
    if _LATIN.search(text):
        return "en"
    return None


class Catalog:
    """The products plus a stem index; read-only, so one instance is shared by every session."""

    def __init__(self, products: Iterable[Product] = PRODUCTS, image_base: str = DEFAULT_IMAGE_BASE) -> None:
        self.products: tuple[Product, ...] = tuple(products)
        self.image_base = image_base
        self._by_sku = {product.sku: product for product in self.products}
        self._stems = {product.sku: self._index(product) for product in self.products}

    @staticmethod
    def _index(product: Product) -> frozenset[str]:
        terms = {stem(word) for keyword in product.keywords for word in words(keyword)}
        terms.update(stem(word) for word in words(product.brand))
        terms.add(product.sku)
        return frozenset(terms)

    def get(self, sku: str) -> Product | None:
        return self._by_sku.get(sku)

    def search(self, query: str, limit: int = 6) -> list[Product]:
        """Products ranked by how many query words they match; ties keep catalog order (stable, testable)."""
        stems = {stem(word) for word in words(query)}
        scored = [(len(stems & self._stems[p.sku]), index, p) for index, p in enumerate(self.products)]
        hits = sorted((item for item in scored if item[0] > 0), key=lambda item: (-item[0], item[1]))
        return [product for _, _, product in hits[:limit]]

    def item(self, product: Product) -> ProductItem:
        return product.to_item(self.image_base)


__all__ = [
    "DEFAULT_IMAGE_BASE",
    "MAX_QUANTITY",
    "PRODUCTS",
    "Catalog",
    "Product",
    "detect_language",
    "stem",
    "words",
]
