"""Prompt templates and class names of the 20 benchmark data sets (8, 14 and 20-task suites).

Reproduced as facts from the task_vectors (Ilharco et al. 2023) and tall_masks (Wang et al. 2024) evaluation
code, which TSV (Gargiulo et al. 2025) and Iso-C/Iso-CTS (Marczak et al. 2025) reuse. Zero-shot heads built from
these match the heads those repositories build, including their quirks, which are kept on purpose so numbers are
comparable:

* class names come from the data set objects there: CIFAR-100 and Food-101 names keep their underscores
  (``aquarium_fish``, ``apple_pie``), Cars/DTD/SUN397/RESISC45 names have underscores replaced by spaces,
  EuroSAT uses CLIP's descriptive names, MNIST/SVHN/EMNIST use digits, KMNIST torchvision's romanised names;
* the PCAM template has no final period;
* FER2013's class order is the data set's label order (angry, disgusted, fearful, happy, sad, surprised,
  neutral). The tall_masks code passes lists of synonyms as "class names" there (so its prompts contain
  Python list syntax); spectral uses the first synonym of each class and keeps the synonyms in
  :data:`FER2013_SYNONYMS`.

Templates are strings with a ``{c}`` placeholder; :func:`render_prompts` fills them.
"""
from __future__ import annotations

__all__ = [
    "ALL_DATASETS",
    "CLASS_NAMES",
    "DATASETS_8",
    "DATASETS_14",
    "DATASETS_20",
    "FER2013_SYNONYMS",
    "TEMPLATES",
    "canonical_dataset_name",
    "class_names",
    "get_templates",
    "render_prompts",
]

#: the tall_masks order: the first 8 are the task_vectors suite, 14 and 20 extend it
ALL_DATASETS: list[str] = [
    "Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397", "SVHN",
    "CIFAR100", "STL10", "Flowers102", "OxfordIIITPet", "PCAM", "FER2013",
    "EMNIST", "CIFAR10", "Food101", "FashionMNIST", "RenderedSST2", "KMNIST",
]
# tall_masks lists SVHN before SUN397 and STL10/OxfordIIITPet/Flowers102/CIFAR100 in another order; the suites
# (sets of tasks) are the same. Keep the TSV/Iso table order above for display.
DATASETS_8: list[str] = ALL_DATASETS[:8]
DATASETS_14: list[str] = ALL_DATASETS[:14]
DATASETS_20: list[str] = ALL_DATASETS[:20]

_A_PHOTO = ["a photo of a {c}.", "a photo of the {c}."]
_CIFAR = [
    "a photo of a {c}.", "a blurry photo of a {c}.", "a black and white photo of a {c}.",
    "a low contrast photo of a {c}.", "a high contrast photo of a {c}.", "a bad photo of a {c}.",
    "a good photo of a {c}.", "a photo of a small {c}.", "a photo of a big {c}.", "a photo of the {c}.",
    "a blurry photo of the {c}.", "a black and white photo of the {c}.", "a low contrast photo of the {c}.",
    "a high contrast photo of the {c}.", "a bad photo of the {c}.", "a good photo of the {c}.",
    "a photo of the small {c}.", "a photo of the big {c}.",
]
_RESISC = [f"{source} {kind} of {art}{{c}}." for art in ("", "a ", "the ")
           for kind in ("imagery", "photo", "view") for source in ("satellite", "aerial")]
_MNIST = ['a photo of the number: "{c}".']

TEMPLATES: dict[str, list[str]] = {
    "Cars": [
        "a photo of a {c}.", "a photo of the {c}.", "a photo of my {c}.", "i love my {c}!",
        "a photo of my dirty {c}.", "a photo of my clean {c}.", "a photo of my new {c}.", "a photo of my old {c}.",
    ],
    "DTD": [f"a photo of {art} {{c}} {kind}." for art in ("a", "the") for kind in ("texture", "pattern", "thing", "object")],
    "EuroSAT": ["a centered satellite photo of {c}.", "a centered satellite photo of a {c}.",
                "a centered satellite photo of the {c}."],
    "GTSRB": ['a zoomed in photo of a "{c}" traffic sign.', 'a centered photo of a "{c}" traffic sign.',
              'a close up photo of a "{c}" traffic sign.'],
    "MNIST": _MNIST,
    "RESISC45": _RESISC,
    "SUN397": _A_PHOTO,
    "SVHN": _MNIST,
    "CIFAR100": _CIFAR,
    "STL10": _A_PHOTO,
    "Flowers102": ["a photo of a {c}, a type of flower."],
    "OxfordIIITPet": ["a photo of a {c}, a type of pet."],
    "PCAM": ["this is a photo of {c}"],
    "FER2013": [
        "a photo of a {c} looking face.", "a photo of a face showing the emotion: {c}.",
        "a photo of a face looking {c}.", "a face that looks {c}.", "they look {c}.", "look at how {c} they are.",
    ],
    "EMNIST": ['a photo of the digit character: "{c}".'],
    "CIFAR10": _CIFAR,
    "Food101": ["a photo of {c}, a type of food."],
    "FashionMNIST": _A_PHOTO,
    "RenderedSST2": ["a {c} review of a movie."],
    "KMNIST": ["a photo of the character {c}."],
}

# ---------------------------------------------------------------------------------------------------------------
# class names

_DIGITS = [str(i) for i in range(10)]

_CARS = [
    "AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
    "Acura TSX Sedan 2012", "Acura Integra Type R 2001", "Acura ZDX Hatchback 2012",
    "Aston Martin V8 Vantage Convertible 2012", "Aston Martin V8 Vantage Coupe 2012",
    "Aston Martin Virage Convertible 2012", "Aston Martin Virage Coupe 2012", "Audi RS 4 Convertible 2008",
    "Audi A5 Coupe 2012", "Audi TTS Coupe 2012", "Audi R8 Coupe 2012", "Audi V8 Sedan 1994", "Audi 100 Sedan 1994",
    "Audi 100 Wagon 1994", "Audi TT Hatchback 2011", "Audi S6 Sedan 2011", "Audi S5 Convertible 2012",
    "Audi S5 Coupe 2012", "Audi S4 Sedan 2012", "Audi S4 Sedan 2007", "Audi TT RS Coupe 2012",
    "BMW ActiveHybrid 5 Sedan 2012", "BMW 1 Series Convertible 2012", "BMW 1 Series Coupe 2012",
    "BMW 3 Series Sedan 2012", "BMW 3 Series Wagon 2012", "BMW 6 Series Convertible 2007", "BMW X5 SUV 2007",
    "BMW X6 SUV 2012", "BMW M3 Coupe 2012", "BMW M5 Sedan 2010", "BMW M6 Convertible 2010", "BMW X3 SUV 2012",
    "BMW Z4 Convertible 2012", "Bentley Continental Supersports Conv. Convertible 2012", "Bentley Arnage Sedan 2009",
    "Bentley Mulsanne Sedan 2011", "Bentley Continental GT Coupe 2012", "Bentley Continental GT Coupe 2007",
    "Bentley Continental Flying Spur Sedan 2007", "Bugatti Veyron 16.4 Convertible 2009",
    "Bugatti Veyron 16.4 Coupe 2009", "Buick Regal GS 2012", "Buick Rainier SUV 2007", "Buick Verano Sedan 2012",
    "Buick Enclave SUV 2012", "Cadillac CTS-V Sedan 2012", "Cadillac SRX SUV 2012",
    "Cadillac Escalade EXT Crew Cab 2007", "Chevrolet Silverado 1500 Hybrid Crew Cab 2012",
    "Chevrolet Corvette Convertible 2012", "Chevrolet Corvette ZR1 2012",
    "Chevrolet Corvette Ron Fellows Edition Z06 2007", "Chevrolet Traverse SUV 2012",
    "Chevrolet Camaro Convertible 2012", "Chevrolet HHR SS 2010", "Chevrolet Impala Sedan 2007",
    "Chevrolet Tahoe Hybrid SUV 2012", "Chevrolet Sonic Sedan 2012", "Chevrolet Express Cargo Van 2007",
    "Chevrolet Avalanche Crew Cab 2012", "Chevrolet Cobalt SS 2010", "Chevrolet Malibu Hybrid Sedan 2010",
    "Chevrolet TrailBlazer SS 2009", "Chevrolet Silverado 2500HD Regular Cab 2012",
    "Chevrolet Silverado 1500 Classic Extended Cab 2007", "Chevrolet Express Van 2007",
    "Chevrolet Monte Carlo Coupe 2007", "Chevrolet Malibu Sedan 2007", "Chevrolet Silverado 1500 Extended Cab 2012",
    "Chevrolet Silverado 1500 Regular Cab 2012", "Chrysler Aspen SUV 2009", "Chrysler Sebring Convertible 2010",
    "Chrysler Town and Country Minivan 2012", "Chrysler 300 SRT-8 2010", "Chrysler Crossfire Convertible 2008",
    "Chrysler PT Cruiser Convertible 2008", "Daewoo Nubira Wagon 2002", "Dodge Caliber Wagon 2012",
    "Dodge Caliber Wagon 2007", "Dodge Caravan Minivan 1997", "Dodge Ram Pickup 3500 Crew Cab 2010",
    "Dodge Ram Pickup 3500 Quad Cab 2009", "Dodge Sprinter Cargo Van 2009", "Dodge Journey SUV 2012",
    "Dodge Dakota Crew Cab 2010", "Dodge Dakota Club Cab 2007", "Dodge Magnum Wagon 2008",
    "Dodge Challenger SRT8 2011", "Dodge Durango SUV 2012", "Dodge Durango SUV 2007", "Dodge Charger Sedan 2012",
    "Dodge Charger SRT-8 2009", "Eagle Talon Hatchback 1998", "FIAT 500 Abarth 2012", "FIAT 500 Convertible 2012",
    "Ferrari FF Coupe 2012", "Ferrari California Convertible 2012", "Ferrari 458 Italia Convertible 2012",
    "Ferrari 458 Italia Coupe 2012", "Fisker Karma Sedan 2012", "Ford F-450 Super Duty Crew Cab 2012",
    "Ford Mustang Convertible 2007", "Ford Freestar Minivan 2007", "Ford Expedition EL SUV 2009",
    "Ford Edge SUV 2012", "Ford Ranger SuperCab 2011", "Ford GT Coupe 2006", "Ford F-150 Regular Cab 2012",
    "Ford F-150 Regular Cab 2007", "Ford Focus Sedan 2007", "Ford E-Series Wagon Van 2012", "Ford Fiesta Sedan 2012",
    "GMC Terrain SUV 2012", "GMC Savana Van 2012", "GMC Yukon Hybrid SUV 2012", "GMC Acadia SUV 2012",
    "GMC Canyon Extended Cab 2012", "Geo Metro Convertible 1993", "HUMMER H3T Crew Cab 2010",
    "HUMMER H2 SUT Crew Cab 2009", "Honda Odyssey Minivan 2012", "Honda Odyssey Minivan 2007",
    "Honda Accord Coupe 2012", "Honda Accord Sedan 2012", "Hyundai Veloster Hatchback 2012",
    "Hyundai Santa Fe SUV 2012", "Hyundai Tucson SUV 2012", "Hyundai Veracruz SUV 2012",
    "Hyundai Sonata Hybrid Sedan 2012", "Hyundai Elantra Sedan 2007", "Hyundai Accent Sedan 2012",
    "Hyundai Genesis Sedan 2012", "Hyundai Sonata Sedan 2012", "Hyundai Elantra Touring Hatchback 2012",
    "Hyundai Azera Sedan 2012", "Infiniti G Coupe IPL 2012", "Infiniti QX56 SUV 2011", "Isuzu Ascender SUV 2008",
    "Jaguar XK XKR 2012", "Jeep Patriot SUV 2012", "Jeep Wrangler SUV 2012", "Jeep Liberty SUV 2012",
    "Jeep Grand Cherokee SUV 2012", "Jeep Compass SUV 2012", "Lamborghini Reventon Coupe 2008",
    "Lamborghini Aventador Coupe 2012", "Lamborghini Gallardo LP 570-4 Superleggera 2012",
    "Lamborghini Diablo Coupe 2001", "Land Rover Range Rover SUV 2012", "Land Rover LR2 SUV 2012",
    "Lincoln Town Car Sedan 2011", "MINI Cooper Roadster Convertible 2012", "Maybach Landaulet Convertible 2012",
    "Mazda Tribute SUV 2011", "McLaren MP4-12C Coupe 2012", "Mercedes-Benz 300-Class Convertible 1993",
    "Mercedes-Benz C-Class Sedan 2012", "Mercedes-Benz SL-Class Coupe 2009", "Mercedes-Benz E-Class Sedan 2012",
    "Mercedes-Benz S-Class Sedan 2012", "Mercedes-Benz Sprinter Van 2012", "Mitsubishi Lancer Sedan 2012",
    "Nissan Leaf Hatchback 2012", "Nissan NV Passenger Van 2012", "Nissan Juke Hatchback 2012",
    "Nissan 240SX Coupe 1998", "Plymouth Neon Coupe 1999", "Porsche Panamera Sedan 2012",
    "Ram C/V Cargo Van Minivan 2012", "Rolls-Royce Phantom Drophead Coupe Convertible 2012",
    "Rolls-Royce Ghost Sedan 2012", "Rolls-Royce Phantom Sedan 2012", "Scion xD Hatchback 2012",
    "Spyker C8 Convertible 2009", "Spyker C8 Coupe 2009", "Suzuki Aerio Sedan 2007", "Suzuki Kizashi Sedan 2012",
    "Suzuki SX4 Hatchback 2012", "Suzuki SX4 Sedan 2012", "Tesla Model S Sedan 2012", "Toyota Sequoia SUV 2012",
    "Toyota Camry Sedan 2012", "Toyota Corolla Sedan 2012", "Toyota 4Runner SUV 2012",
    "Volkswagen Golf Hatchback 2012", "Volkswagen Golf Hatchback 1991", "Volkswagen Beetle Hatchback 2012",
    "Volvo C30 Hatchback 2012", "Volvo 240 Sedan 1993", "Volvo XC90 SUV 2007", "smart fortwo Convertible 2012",
]

_DTD = [
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved", "honeycombed",
    "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley", "perforated", "pitted",
    "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained",
    "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
]

# EuroSAT folders in sorted order, and the descriptive names CLIP and the reference code use for them
EUROSAT_FOLDERS = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake"]
_EUROSAT = [
    "annual crop land", "forest", "brushland or shrubland", "highway or road",
    "industrial buildings or commercial buildings", "pasture land", "permanent crop land",
    "residential buildings or homes or apartments", "river", "lake or sea",
]

_GTSRB = [
    "red and white circle 20 kph speed limit", "red and white circle 30 kph speed limit",
    "red and white circle 50 kph speed limit", "red and white circle 60 kph speed limit",
    "red and white circle 70 kph speed limit", "red and white circle 80 kph speed limit",
    "end / de-restriction of 80 kph speed limit", "red and white circle 100 kph speed limit",
    "red and white circle 120 kph speed limit", "red and white circle red car and black car no passing",
    "red and white circle red truck and black car no passing", "red and white triangle road intersection warning",
    "white and yellow diamond priority road", "red and white upside down triangle yield right-of-way", "stop",
    "empty red and white circle", "red and white circle no truck entry",
    "red circle with white horizonal stripe no entry", "red and white triangle with exclamation mark warning",
    "red and white triangle with black left curve approaching warning",
    "red and white triangle with black right curve approaching warning",
    "red and white triangle with black double curve approaching warning",
    "red and white triangle rough / bumpy road warning", "red and white triangle car skidding / slipping warning",
    "red and white triangle with merging / narrow lanes warning",
    "red and white triangle with person digging / construction / road work warning",
    "red and white triangle with traffic light approaching warning",
    "red and white triangle with person walking warning",
    "red and white triangle with child and person walking warning", "red and white triangle with bicyle warning",
    "red and white triangle with snowflake / ice warning", "red and white triangle with deer warning",
    "white circle with gray strike bar no speed limit", "blue circle with white right turn arrow mandatory",
    "blue circle with white left turn arrow mandatory", "blue circle with white forward arrow mandatory",
    "blue circle with white forward or right turn arrow mandatory",
    "blue circle with white forward or left turn arrow mandatory",
    "blue circle with white keep right arrow mandatory", "blue circle with white keep left arrow mandatory",
    "blue circle with white arrows indicating a traffic circle",
    "white circle with gray strike bar indicating no passing for cars has ended",
    "white circle with gray strike bar indicating no passing for trucks has ended",
]

_RESISC45_FOLDERS = [
    "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge", "chaparral", "church",
    "circular_farmland", "cloud", "commercial_area", "dense_residential", "desert", "forest", "freeway",
    "golf_course", "ground_track_field", "harbor", "industrial_area", "intersection", "island", "lake", "meadow",
    "medium_residential", "mobile_home_park", "mountain", "overpass", "palace", "parking_lot", "railway",
    "railway_station", "rectangular_farmland", "river", "roundabout", "runway", "sea_ice", "ship", "snowberg",
    "sparse_residential", "stadium", "storage_tank", "tennis_court", "terrace", "thermal_power_station", "wetland",
]

# SUN397 categories ("/letter/name[/sub]"). The reference code builds ImageFolder folders named
# "<letter>_<name>[_<sub>]" and reads class names back as folder[2:] with "_" → " ", in sorted folder order.
_SUN397_CATEGORIES = """
a/abbey a/airplane_cabin a/airport_terminal a/alley a/amphitheater a/amusement_arcade a/amusement_park
a/anechoic_chamber a/apartment_building/outdoor a/apse/indoor a/aquarium a/aqueduct a/arch a/archive
a/arrival_gate/outdoor a/art_gallery a/art_school a/art_studio a/assembly_line a/athletic_field/outdoor
a/atrium/public a/attic a/auditorium a/auto_factory b/badlands b/badminton_court/indoor b/baggage_claim
b/bakery/shop b/balcony/exterior b/balcony/interior b/ball_pit b/ballroom b/bamboo_forest b/banquet_hall b/bar
b/barn b/barndoor b/baseball_field b/basement b/basilica b/basketball_court/outdoor b/bathroom b/batters_box
b/bayou b/bazaar/indoor b/bazaar/outdoor b/beach b/beauty_salon b/bedroom b/berth b/biology_laboratory
b/bistro/indoor b/boardwalk b/boat_deck b/boathouse b/bookstore b/booth/indoor b/botanical_garden
b/bow_window/indoor b/bow_window/outdoor b/bowling_alley b/boxing_ring b/brewery/indoor b/bridge
b/building_facade b/bullring b/burial_chamber b/bus_interior b/butchers_shop b/butte c/cabin/outdoor
c/cafeteria c/campsite c/campus c/canal/natural c/canal/urban c/candy_store c/canyon c/car_interior/backseat
c/car_interior/frontseat c/carrousel c/casino/indoor c/castle c/catacomb c/cathedral/indoor c/cathedral/outdoor
c/cavern/indoor c/cemetery c/chalet c/cheese_factory c/chemistry_lab c/chicken_coop/indoor
c/chicken_coop/outdoor c/childs_room c/church/indoor c/church/outdoor c/classroom c/clean_room c/cliff
c/cloister/indoor c/closet c/clothing_store c/coast c/cockpit c/coffee_shop c/computer_room c/conference_center
c/conference_room c/construction_site c/control_room c/control_tower/outdoor c/corn_field c/corral c/corridor
c/cottage_garden c/courthouse c/courtroom c/courtyard c/covered_bridge/exterior c/creek c/crevasse c/crosswalk
c/cubicle/office d/dam d/delicatessen d/dentists_office d/desert/sand d/desert/vegetation d/diner/indoor
d/diner/outdoor d/dinette/home d/dinette/vehicle d/dining_car d/dining_room d/discotheque d/dock
d/doorway/outdoor d/dorm_room d/driveway d/driving_range/outdoor d/drugstore e/electrical_substation
e/elevator/door e/elevator/interior e/elevator_shaft e/engine_room e/escalator/indoor e/excavation
f/factory/indoor f/fairway f/fastfood_restaurant f/field/cultivated f/field/wild f/fire_escape f/fire_station
f/firing_range/indoor f/fishpond f/florist_shop/indoor f/food_court f/forest/broadleaf f/forest/needleleaf
f/forest_path f/forest_road f/formal_garden f/fountain g/galley g/game_room g/garage/indoor g/garbage_dump
g/gas_station g/gazebo/exterior g/general_store/indoor g/general_store/outdoor g/gift_shop g/golf_course
g/greenhouse/indoor g/greenhouse/outdoor g/gymnasium/indoor h/hangar/indoor h/hangar/outdoor h/harbor
h/hayfield h/heliport h/herb_garden h/highway h/hill h/home_office h/hospital h/hospital_room h/hot_spring
h/hot_tub/outdoor h/hotel/outdoor h/hotel_room h/house h/hunting_lodge/outdoor i/ice_cream_parlor i/ice_floe
i/ice_shelf i/ice_skating_rink/indoor i/ice_skating_rink/outdoor i/iceberg i/igloo i/industrial_area
i/inn/outdoor i/islet j/jacuzzi/indoor j/jail/indoor j/jail_cell j/jewelry_shop k/kasbah k/kennel/indoor
k/kennel/outdoor k/kindergarden_classroom k/kitchen k/kitchenette l/labyrinth/outdoor l/lake/natural
l/landfill l/landing_deck l/laundromat l/lecture_room l/library/indoor l/library/outdoor l/lido_deck/outdoor
l/lift_bridge l/lighthouse l/limousine_interior l/living_room l/lobby l/lock_chamber l/locker_room m/mansion
m/manufactured_home m/market/indoor m/market/outdoor m/marsh m/martial_arts_gym m/mausoleum m/medina
m/moat/water m/monastery/outdoor m/mosque/indoor m/mosque/outdoor m/motel m/mountain m/mountain_snowy
m/movie_theater/indoor m/museum/indoor m/music_store m/music_studio n/nuclear_power_plant/outdoor n/nursery
o/oast_house o/observatory/outdoor o/ocean o/office o/office_building o/oil_refinery/outdoor o/oilrig
o/operating_room o/orchard o/outhouse/outdoor p/pagoda p/palace p/pantry p/park p/parking_garage/indoor
p/parking_garage/outdoor p/parking_lot p/parlor p/pasture p/patio p/pavilion p/pharmacy p/phone_booth
p/physics_laboratory p/picnic_area p/pilothouse/indoor p/planetarium/outdoor p/playground p/playroom p/plaza
p/podium/indoor p/podium/outdoor p/pond p/poolroom/establishment p/poolroom/home p/power_plant/outdoor
p/promenade_deck p/pub/indoor p/pulpit p/putting_green r/racecourse r/raceway r/raft r/railroad_track
r/rainforest r/reception r/recreation_room r/residential_neighborhood r/restaurant r/restaurant_kitchen
r/restaurant_patio r/rice_paddy r/riding_arena r/river r/rock_arch r/rope_bridge r/ruin r/runway s/sandbar
s/sandbox s/sauna s/schoolhouse s/sea_cliff s/server_room s/shed s/shoe_shop s/shopfront s/shopping_mall/indoor
s/shower s/skatepark s/ski_lodge s/ski_resort s/ski_slope s/sky s/skyscraper s/slum s/snowfield s/squash_court
s/stable s/stadium/baseball s/stadium/football s/stage/indoor s/staircase s/street s/subway_interior
s/subway_station/platform s/supermarket s/sushi_bar s/swamp s/swimming_pool/indoor s/swimming_pool/outdoor
s/synagogue/indoor s/synagogue/outdoor t/television_studio t/temple/east_asia t/temple/south_asia
t/tennis_court/indoor t/tennis_court/outdoor t/tent/outdoor t/theater/indoor_procenium t/theater/indoor_seats
t/thriftshop t/throne_room t/ticket_booth t/toll_plaza t/topiary_garden t/tower t/toyshop t/track/outdoor
t/train_railway t/train_station/platform t/tree_farm t/tree_house t/trench u/underwater/coral_reef
u/utility_room v/valley v/van_interior v/vegetable_garden v/veranda v/veterinarians_office v/viaduct
v/videostore v/village v/vineyard v/volcano v/volleyball_court/indoor v/volleyball_court/outdoor
w/waiting_room w/warehouse/indoor w/water_tower w/waterfall/block w/waterfall/fan w/waterfall/plunge
w/watering_hole w/wave w/wet_bar w/wheat_field w/wind_farm w/windmill w/wine_cellar/barrel_storage
w/wine_cellar/bottle_storage w/wrestling_ring/indoor y/yard y/youth_hostel
""".split()

#: the folder names the reference preprocessing creates for SUN397, in ImageFolder (sorted) order
SUN397_FOLDERS: list[str] = sorted(c.replace("/", "_") for c in _SUN397_CATEGORIES)
_SUN397 = [folder[2:].replace("_", " ") for folder in SUN397_FOLDERS]

_CIFAR100 = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
]

_STL10 = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
_CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

_FLOWERS102 = [
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold", "tiger lily",
    "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon", "colt's foot", "king protea",
    "spear thistle", "yellow iris", "globe flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger", "grape hyacinth",
    "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william", "carnation",
    "garden phlox", "love in the mist", "mexican aster", "alpine sea holly", "ruby-lipped cattleya", "cape flower",
    "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia",
    "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura", "geranium", "orange dahlia",
    "pink and yellow dahlia", "cautleya spicata", "japanese anemone", "black-eyed susan", "silverbush",
    "californian poppy", "osteospermum", "spring crocus", "bearded iris", "windflower", "tree poppy", "gazania",
    "azalea", "water lily", "rose", "thorn apple", "morning glory", "passion flower", "lotus", "toad lily",
    "anthurium", "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow", "magnolia",
    "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "air plant", "foxglove", "bougainvillea",
    "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower", "trumpet creeper", "blackberry lily",
]

_PETS = [
    "Abyssinian", "American Bulldog", "American Pit Bull Terrier", "Basset Hound", "Beagle", "Bengal", "Birman",
    "Bombay", "Boxer", "British Shorthair", "Chihuahua", "Egyptian Mau", "English Cocker Spaniel", "English Setter",
    "German Shorthaired", "Great Pyrenees", "Havanese", "Japanese Chin", "Keeshond", "Leonberger", "Maine Coon",
    "Miniature Pinscher", "Newfoundland", "Persian", "Pomeranian", "Pug", "Ragdoll", "Russian Blue",
    "Saint Bernard", "Samoyed", "Scottish Terrier", "Shiba Inu", "Siamese", "Sphynx", "Staffordshire Bull Terrier",
    "Wheaten Terrier", "Yorkshire Terrier",
]

_PCAM = ["lymph node", "lymph node containing metastatic tumor tissue"]

#: FER2013 label order with the synonyms the tall_masks code lists per class
FER2013_SYNONYMS: list[list[str]] = [
    ["angry"], ["disgusted"], ["fearful"], ["happy", "smiling"], ["sad", "depressed"],
    ["surprised", "shocked", "spooked"], ["neutral", "bored"],
]
_FER2013 = [s[0] for s in FER2013_SYNONYMS]

_FOOD101 = sorted([
    "apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad", "beignets",
    "bibimbap", "bread_pudding", "breakfast_burrito", "bruschetta", "caesar_salad", "cannoli", "caprese_salad",
    "carrot_cake", "ceviche", "cheese_plate", "cheesecake", "chicken_curry", "chicken_quesadilla", "chicken_wings",
    "chocolate_cake", "chocolate_mousse", "churros", "clam_chowder", "club_sandwich", "crab_cakes", "creme_brulee",
    "croque_madame", "cup_cakes", "deviled_eggs", "donuts", "dumplings", "edamame", "eggs_benedict", "escargots",
    "falafel", "filet_mignon", "fish_and_chips", "foie_gras", "french_fries", "french_onion_soup", "french_toast",
    "fried_calamari", "fried_rice", "frozen_yogurt", "garlic_bread", "gnocchi", "greek_salad",
    "grilled_cheese_sandwich", "grilled_salmon", "guacamole", "gyoza", "hamburger", "hot_and_sour_soup", "hot_dog",
    "huevos_rancheros", "hummus", "ice_cream", "lasagna", "lobster_bisque", "lobster_roll_sandwich",
    "macaroni_and_cheese", "macarons", "miso_soup", "mussels", "nachos", "omelette", "onion_rings", "oysters",
    "pad_thai", "paella", "pancakes", "panna_cotta", "peking_duck", "pho", "pizza", "pork_chop", "poutine",
    "prime_rib", "pulled_pork_sandwich", "ramen", "ravioli", "red_velvet_cake", "risotto", "samosa", "sashimi",
    "scallops", "seaweed_salad", "shrimp_and_grits", "spaghetti_bolognese", "spaghetti_carbonara", "spring_rolls",
    "steak", "strawberry_shortcake", "sushi", "tacos", "takoyaki", "tiramisu", "tuna_tartare", "waffles",
])

_FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_SST2 = ["negative", "positive"]
_KMNIST = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]

CLASS_NAMES: dict[str, list[str]] = {
    "Cars": _CARS,
    "DTD": _DTD,
    "EuroSAT": _EUROSAT,
    "GTSRB": _GTSRB,
    "MNIST": _DIGITS,
    "RESISC45": [c.replace("_", " ") for c in _RESISC45_FOLDERS],
    "SUN397": _SUN397,
    "SVHN": _DIGITS,
    "CIFAR100": _CIFAR100,
    "STL10": _STL10,
    "Flowers102": _FLOWERS102,
    "OxfordIIITPet": _PETS,
    "PCAM": _PCAM,
    "FER2013": _FER2013,
    "EMNIST": _DIGITS,
    "CIFAR10": _CIFAR10,
    "Food101": _FOOD101,
    "FashionMNIST": _FASHION,
    "RenderedSST2": _SST2,
    "KMNIST": _KMNIST,
}

_ALIASES = {name.lower(): name for name in ALL_DATASETS}
_ALIASES.update({
    "stanfordcars": "Cars", "stanford_cars": "Cars", "cars196": "Cars", "eurosat_splits": "EuroSAT",
    "oxfordpets": "OxfordIIITPet", "pets": "OxfordIIITPet", "oxford_iiit_pet": "OxfordIIITPet",
    "flowers": "Flowers102", "flowers-102": "Flowers102", "sst2": "RenderedSST2", "rendered_sst2": "RenderedSST2",
    "fashion_mnist": "FashionMNIST", "fer-2013": "FER2013", "patchcamelyon": "PCAM", "food-101": "Food101",
    "food_101": "Food101", "resisc": "RESISC45", "nwpu-resisc45": "RESISC45", "sun": "SUN397",
})


def canonical_dataset_name(name: str) -> str | None:
    """``"CarsVal"`` / ``"cars"`` / ``"StanfordCars"`` → ``"Cars"``; None for names outside the 20 benchmarks.

    A trailing ``Val`` (the reference code's validation variants) is ignored."""
    base = name[:-3] if name.endswith("Val") and len(name) > 3 else name
    return _ALIASES.get(base.lower())


def _lookup(name: str) -> str:
    canon = canonical_dataset_name(name)
    if canon is None:
        raise KeyError(
            f"{name!r} is not one of the 20 benchmark data sets ({', '.join(ALL_DATASETS)}); "
            "give class names (and templates) explicitly"
        )
    return canon


def get_templates(name: str) -> list[str]:
    """Prompt templates (``{c}`` placeholder) of a benchmark data set, e.g. ``get_templates("DTD")``."""
    return list(TEMPLATES[_lookup(name)])


def class_names(name: str) -> list[str]:
    """Class names of a benchmark data set in label order."""
    return list(CLASS_NAMES[_lookup(name)])


def render_prompts(templates: list[str], class_name: str) -> list[str]:
    """Fill ``{c}`` (or a bare ``{}``) of every template with a class name."""
    out = []
    for t in templates:
        out.append(t.replace("{c}", class_name) if "{c}" in t else t.replace("{}", class_name))
    return out
