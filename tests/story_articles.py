"""Articles of known stories for the stories tests (tests/test_stories.py,
tests/test_milvus_updates.py): two events of one kind each, and unrelated news."""

# two rehab stays (one kind, two events) and two reports of each, among unrelated news
REHAB = [
    ("reid-1", "Tara Reid checks into Promises rehab in Malibu",
     "Actress Tara Reid, 33, has entered the Promises Treatment Center in Malibu, her representative Jack Ketsoyan "
     "confirmed. The American Pie star checked in on Monday."),
    ("lohan-1", "Lindsay Lohan enters Betty Ford clinic",
     "Lindsay Lohan has checked into the Betty Ford Center in Rancho Mirage under a plea deal with Los Angeles "
     "prosecutors, her lawyer Shawn Holley said on Thursday."),
    ("reid-2", "Tara Reid in rehab at Promises, Ketsoyan says",
     "Jack Ketsoyan, the representative of Tara Reid, said the American Pie actress is staying at Promises in "
     "Malibu, the clinic chosen by many Hollywood stars."),
    ("lohan-2", "Lohan starts 90-day stay at Betty Ford Center",
     "Lindsay Lohan arrived at the Betty Ford Center in Rancho Mirage for the 90-day stay her plea deal with "
     "Los Angeles prosecutors requires, Shawn Holley told reporters."),
]
# two earthquakes in Indonesia, their reports arriving interleaved: the first Papua report
# joins the Aceh story (one kind of event, the same words), and the story is split again
# once both halves have grown
ACEH = [
    ("aceh-1", "Strong earthquake hits Aceh province in Indonesia",
     "An earthquake of magnitude 6.1 struck Aceh province on the island of Sumatra on Tuesday, the Indonesian "
     "geophysics agency said. Residents of Banda Aceh fled their homes; no tsunami warning was issued."),
    ("aceh-2", "Aceh earthquake damages mosques in Bener Meriah",
     "The magnitude 6.1 earthquake in Aceh damaged mosques and houses in Bener Meriah and Central Aceh, "
     "officials said, and the Indonesian disaster agency sent tents to the Gayo highlands."),
    ("aceh-3", "Death toll in Aceh quake rises",
     "The toll of Tuesday's earthquake in Aceh rose to 22, the Indonesian disaster agency said, most of them in "
     "Bener Meriah, where landslides buried villages in the Gayo highlands."),
    ("aceh-4", "Aceh quake survivors sleep in tents",
     "Thousands of survivors of the Aceh earthquake slept in tents in Central Aceh and Bener Meriah, as aftershocks "
     "shook the Gayo highlands, the disaster agency's spokesman Sutopo Purwo Nugroho said."),
]
PAPUA = [
    ("papua-1", "Strong earthquake hits Papua in Indonesia",
     "An earthquake of magnitude 7.1 struck off the coast of Papua province on Monday, the Indonesian geophysics "
     "agency said. Residents of Jayapura fled their homes; no tsunami warning was issued."),
    ("papua-2", "Papua earthquake damages church in Manokwari",
     "The magnitude 7.1 earthquake off Papua damaged a church and a hotel in Manokwari, West Papua, officials said, "
     "and the port of Sorong was closed for inspection."),
    ("papua-3", "Manokwari counts the cost of the Papua quake",
     "Four people died in Manokwari after the Papua earthquake, the West Papua police chief said, and the Sorong "
     "port reopened on Wednesday."),
    ("papua-4", "Aftershocks rattle Manokwari",
     "Aftershocks rattled Manokwari and Sorong in West Papua through Tuesday night, and residents of the "
     "Papuan coast slept outdoors, the West Papua police chief said."),
]
QUAKES = [article for pair in zip(ACEH, PAPUA) for article in pair]
OTHER = [
    ("bridge", "New bridge opens over the river", "The city opened a new bridge over the river on Monday after "
                                                  "three years of works, the mayor said."),
    ("rates", "Central bank holds interest rates", "The central bank kept its interest rates unchanged on "
                                                   "Thursday, citing slowing inflation and a weaker jobs market."),
    ("storm", "Storm cuts power to thousands", "A winter storm cut power to thousands of homes on the coast "
                                               "overnight, the utility company said."),
]
