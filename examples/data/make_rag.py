"""Write corpus.txt and rag.jsonl for examples/rag.lmp, deterministically.

The corpus is the member handbook of a fictional library (so answers must come from
retrieval, not from what a model memorized): one paragraph per topic, each with two
questions whose short answers appear verbatim in the paragraph.

    python examples/data/make_rag.py
"""

from __future__ import annotations

import json
from pathlib import Path

# (paragraph, [(question, answer), (question, answer)])
TOPICS: list[tuple[str, list[tuple[str, str]]]] = [
    ("Harbor Light Library opened in 1962 in the old customs house on Quay Street. "
     "It is run by the city of Port Alden and funded by a small levy on harbor fees.",
     [("In what year did Harbor Light Library open?", "1962"),
      ("Which street is Harbor Light Library on?", "Quay Street")]),
    ("The library is open from 9 am to 8 pm on weekdays and from 10 am to 4 pm on "
     "Saturdays. It is closed on Sundays and on public holidays.",
     [("On which day of the week is the library closed?", "Sunday"),
      ("When does the library close on weekdays?", "8 pm")]),
    ("A library card is free for anyone who lives, works or studies in Port Alden. "
     "Visitors can buy a card valid for six months for 15 dollars.",
     [("How much does a visitor card cost?", "15 dollars"),
      ("How long is a visitor card valid?", "six months")]),
    ("Members may borrow up to 12 items at a time. Books are lent for three weeks, "
     "films and music for one week.",
     [("How many items may a member borrow at once?", "12"),
      ("For how long are films lent?", "one week")]),
    ("A loan can be renewed twice online or at the desk, unless another member has "
     "reserved the item.",
     [("How many times can a loan be renewed?", "twice"),
      ("What stops a loan from being renewed?", "another member has reserved the item")]),
    ("Late returns cost 20 cents per item per day, up to a maximum of 5 dollars per "
     "item. Children's books never collect fines.",
     [("What is the daily late fee per item?", "20 cents"),
      ("Which books never collect fines?", "children's books")]),
    ("A lost item is charged at its replacement price plus a processing fee of 3 dollars. "
     "If the item is found within 90 days the charge is refunded.",
     [("What processing fee is added for a lost item?", "3 dollars"),
      ("Within how many days must a lost item be found for a refund?", "90 days")]),
    ("The reading room on the second floor is a silent zone. Phone calls are allowed "
     "only in the lobby.",
     [("Where is the reading room?", "the second floor"),
      ("Where are phone calls allowed?", "the lobby")]),
    ("Group study rooms seat up to six people and can be booked for two hours a day. "
     "Bookings open seven days in advance.",
     [("How many people fit in a group study room?", "six"),
      ("How many days ahead do study room bookings open?", "seven days")]),
    ("The maker space has two 3D printers, a laser cutter and sewing machines. Members "
     "must complete a safety course of 30 minutes before using the laser cutter.",
     [("How many 3D printers does the maker space have?", "two"),
      ("How long is the laser cutter safety course?", "30 minutes")]),
    ("3D printing costs 10 cents per gram of filament. Prints larger than 500 grams "
     "need approval from staff.",
     [("How much does 3D printing cost per gram?", "10 cents"),
      ("Above what weight do prints need staff approval?", "500 grams")]),
    ("Public computers can be used for 90 minutes per day. Printing is 10 cents per "
     "black and white page and 50 cents per color page.",
     [("How long can a member use a public computer each day?", "90 minutes"),
      ("How much does a color page cost to print?", "50 cents")]),
    ("The library wifi network is called HarborLight-Public and needs no password. "
     "It reaches the garden terrace as well.",
     [("What is the name of the library wifi network?", "HarborLight-Public"),
      ("Besides the building, where does the wifi reach?", "the garden terrace")]),
    ("Story time for children under five takes place every Tuesday and Thursday at "
     "10:30 in the children's corner.",
     [("On which days is story time held?", "Tuesday and Thursday"),
      ("At what time does story time start?", "10:30")]),
    ("The homework club helps pupils aged 8 to 14 on weekday afternoons from 3 pm to "
     "5 pm, run by volunteer teachers.",
     [("What ages does the homework club serve?", "8 to 14"),
      ("Who runs the homework club?", "volunteer teachers")]),
    ("The local history collection holds ship logs, harbor maps and about 4,000 "
     "photographs. It can be viewed by appointment in the archive room.",
     [("How many photographs are in the local history collection?", "4,000"),
      ("How can the local history collection be viewed?", "by appointment")]),
    ("Rare items from the archive may not leave the building. Visitors must use "
     "pencils, not pens, when taking notes on them.",
     [("What must visitors use to take notes on rare items?", "pencils"),
      ("May rare archive items be borrowed?", "no")]),
    ("The library lends e-books and audiobooks through the Lantern app. Each member "
     "can borrow five digital titles per month.",
     [("Which app lends e-books?", "Lantern"),
      ("How many digital titles can a member borrow per month?", "five")]),
    ("Members can ask the library to buy a book through a purchase suggestion form. "
     "Suggestions are reviewed every second Monday.",
     [("How can members ask the library to buy a book?", "a purchase suggestion form"),
      ("How often are purchase suggestions reviewed?", "every second Monday")]),
    ("The book drop beside the main entrance is open day and night. Items returned "
     "there are checked in the next morning.",
     [("Where is the book drop?", "beside the main entrance"),
      ("When are book drop returns checked in?", "the next morning")]),
    ("The Friends of Harbor Light hold a used book sale on the first Saturday of each "
     "month. Paperbacks cost 1 dollar and hardcovers 2 dollars.",
     [("When is the used book sale held?", "the first Saturday of each month"),
      ("How much does a hardcover cost at the book sale?", "2 dollars")]),
    ("Volunteers must be at least 16 years old and give three hours a week. They are "
     "trained by the volunteer coordinator, Maria Okafor.",
     [("How old must a volunteer be?", "16"),
      ("Who is the volunteer coordinator?", "Maria Okafor")]),
    ("The library has a home delivery service for members who cannot visit because of "
     "illness or disability. Deliveries are made every other Wednesday.",
     [("Who can use the home delivery service?", "members who cannot visit"),
      ("How often are home deliveries made?", "every other Wednesday")]),
    ("Lockers in the lobby cost a 1 dollar coin, which is returned when the locker is "
     "opened. Lockers are emptied every night at closing.",
     [("What does a lobby locker cost?", "a 1 dollar coin"),
      ("When are lockers emptied?", "every night at closing")]),
    ("Food is not allowed in the reading areas, but covered drinks are fine. The cafe "
     "on the ground floor serves coffee and sandwiches.",
     [("Which drinks are allowed in the reading areas?", "covered drinks"),
      ("On which floor is the cafe?", "the ground floor")]),
    ("Dogs are not allowed inside except for assistance dogs. A water bowl for dogs "
     "stands by the garden gate.",
     [("Which dogs are allowed inside the library?", "assistance dogs"),
      ("Where is the water bowl for dogs?", "by the garden gate")]),
    ("The seed library in the garden lends vegetable and flower seeds each spring. "
     "Members are asked to bring back seeds from their harvest in autumn.",
     [("Where is the seed library?", "in the garden"),
      ("When are members asked to bring back seeds?", "in autumn")]),
    ("The library board meets on the last Thursday of each month at 6 pm. Meetings are "
     "open to the public and minutes are posted online.",
     [("When does the library board meet?", "the last Thursday of each month"),
      ("Where are the board minutes posted?", "online")]),
    ("Lost and found items are kept at the front desk for 30 days, then given to "
     "charity. Lost library cards can be replaced for 2 dollars.",
     [("How long are lost and found items kept?", "30 days"),
      ("How much does a replacement library card cost?", "2 dollars")]),
    ("The library's director is Tomas Reyes, who has led it since 2015. Feedback can "
     "be sent to him through the comments box in the lobby.",
     [("Who is the library's director?", "Tomas Reyes"),
      ("Since what year has the director led the library?", "2015")]),
]


def main() -> None:
    here = Path(__file__).parent
    corpus = "\n\n".join(paragraph for paragraph, _ in TOPICS) + "\n"
    (here / "corpus.txt").write_text(corpus, encoding="utf-8")
    rows = [{"question": q, "answer": a} for _, qas in TOPICS for q, a in qas]
    for paragraph, qas in TOPICS:  # every answer must be findable in its paragraph
        for _, answer in qas:
            assert answer.lower() in paragraph.lower() or answer == "no", answer
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (here / "rag.jsonl").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
