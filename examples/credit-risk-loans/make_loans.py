"""Write a SYNTHETIC raw credit-risk loans table, shaped like Kueski's `dataset_credit_risk.csv`.

THE DATA THIS SCRIPT WRITES IS SYNTHETIC. No row describes a real person or a real loan, and
no real data is read at run time: every distribution below is a constant in this file.

What it imitates
----------------
The Kueski MLE challenge (the credit-risk seed) computed five per-client features
(`nb_previous_loans`, `avg_amount_loans_previous`, `age`, `years_on_the_job`, `flag_own_car`)
from a raw loans file, `dataset_credit_risk.csv`, that is not available: 777,715 rows, one per
loan, 24 columns. Its client attributes come from Kaggle's "Credit Card Approval Prediction"
`application_record` (the `code_gender ... cnt_fam_members` columns, `days_birth` and
`days_employed` as negative day counts, `days_employed = 365243` for pensioners), and its row
and client counts (777,715 rows, 36,457 clients) are, as far as we know, those of that file
joined to Kaggle's `credit_record` on the client id. This script writes the same 24 columns:

    loan_id, id, code_gender, flag_own_car, flag_own_realty, cnt_children, amt_income_total,
    name_income_type, name_education_type, name_family_status, name_housing_type, days_birth,
    days_employed, flag_mobil, flag_work_phone, flag_phone, flag_email, occupation_type,
    cnt_fam_members, status, birthday, job_start_date, loan_date, loan_amount

Calibration: the marginals of loans per client, age, years on the job, the pensioner share by
age, the own-car rate, the loan amounts and the gaps between client ids were read once, by
hand, from the seed author's per-client feature table (`kueski_features_by_client.csv.gz`,
36,457 clients, described in section 4 of `shared/datasets/README.md`). They are copied
below as constants, with a comment on each. The categorical shares (gender, income type,
education, family, housing, occupation, phone flags) are approximately those of Kaggle's
`application_record`. The loan dates, the per-loan `status` and its signal are invented.

The traps it reproduces
-----------------------
- Repeated clients: about 21 loans per `id` (1 to 61), `loan_id` unique. Client attributes
  (gender, car, birthday, job start, income, ...) are constant per client and repeated on
  every one of its rows. A train/test split must be grouped by `id`.
- Rows are not in time order: they are sorted by `id`, and within a client the newest loan
  comes first (like the descending months of Kaggle's `credit_record`). Sort by `loan_date`
  yourself.
- Timestamps tie: about 3 % of a client's loans share the date of its previous loan. "Loans
  before this one" must mean strictly earlier dates, not earlier rows.
- `loan_date`, `birthday` and `job_start_date` are ISO date strings (`YYYY-MM-DD`), not dates.
  `loan_date` runs from 2014-01-01 to 2021-08-31, most of it in 2018..2021 (a client's last
  loan is on average a year before the end), and never before the client's 18th birthday.
- The pensioner pattern: every pensioner (about 16.8 % of clients, mostly over 55, as in the
  seed's 6,135 null `years_on_the_job` of 36,457 clients) has `days_employed = 365243` and
  `job_start_date = 3021-09-18`. The dates are `REFERENCE_DATE + days_birth` and
  `REFERENCE_DATE + days_employed`, with `REFERENCE_DATE = 2021-09-17`, which puts the one known
  real row (client 5044500, `job_start_date 3021-09-18`) on the same date. pandas'
  `to_datetime` cannot hold year 3021 (its maximum is 2262-04-11).
- A job can start after some of the client's loans (the job start is measured back from
  2021-09-17 and loans go back to 2014), so years on the job at such a loan is undefined:
  with the pensioners, about a third of the loans have no years on the job.
- Missing values: `occupation_type` (all pensioners and about 17 % of the others),
  `job_start_date` (0.2 % of clients, with `days_employed` still filled), `flag_own_car`
  (0.3 % of clients), `loan_amount` (0.05 % of loans).
- A job start is never before the birthday (at least 17 years after it).
- `status` (1 = bad) is rare: a few percent of loans.

How `status` is generated
-------------------------
For each loan, with the point-in-time features computed on the client's strictly earlier
loans:

    n     = nb_previous_loans (earlier loans; ties excluded)
    avg   = avg_amount_loans_previous (mean non-null amount of those; missing when none)
    age   = age in years at loan_date
    job   = years on the job at loan_date (missing for pensioners, missing job starts, and
            jobs that start after the loan)
    car   = 1 if flag_own_car is "Y" else 0 (0 when missing)

    logit = -3.1
            + 0.55 * (n == 0)                       first loan: no history
            - 0.30 * log(1 + n)                     more history, less risk
            + 0.45 * clip((avg - 130) / 20, -1.5, 5)  when avg is known
            - 0.035 * (age - 40)
            - 0.07 * min(job, 15)                   when job is known
            + 0.25 * (job is missing)
            - 0.45 * car
            + u                                     client frailty, u ~ Normal(0, 0.6)
    status ~ Bernoulli(1 / (1 + exp(-logit)))

The frailty `u` is constant per client and unobserved, so bad loans cluster on clients and
the five features only explain part of the risk: a model on them reaches a ROC AUC of about
0.7 on a client-grouped split. About 2.3 % of loans are bad, and 1.7 % of the clients' latest
loans (the seed's per-client table had 1.62 %).

Usage
-----
    python examples/credit-risk-loans/make_loans.py                      # 777,715 rows
    python examples/credit-risk-loans/make_loans.py --rows 1000000 --output /tmp/loans.csv

The output format follows the suffix: `.parquet`, `.csv` or `.csv.gz`. The result depends
only on `--rows` and `--seed`. Needs numpy, pandas and pyarrow.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DEFAULT_ROWS = 777_715
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "loans.parquet"

# Birthday and job start are this date plus days_birth and days_employed (see the docstring).
REFERENCE_DATE = np.datetime64("2021-09-17", "D")
PENSIONER_DAYS_EMPLOYED = 365_243  # Kaggle's sentinel: REFERENCE_DATE + it is 3021-09-18
LOAN_START = np.datetime64("2014-01-01", "D")
LOAN_END = np.datetime64("2021-08-31", "D")
FIRST_CLIENT_ID = 5_008_804  # the lowest id of the seed's per-client table

# Loans per client, 1..61: the counts of nb_previous_loans = 0..60 (plus one, the latest loan)
# in kueski_features_by_client.csv.gz (36,457 clients, mean 21.3 loans).
LOANS_PER_CLIENT_COUNTS = (
    343, 955, 1037, 1222, 1114, 1278, 1251, 1306, 1208, 1072, 1114, 1144, 1129, 959, 985, 952,
    936, 896, 819, 785, 787, 675, 671, 677, 696, 662, 583, 601, 593, 550, 542, 496, 471, 427,
    455, 424, 433, 419, 405, 449, 414, 354, 333, 326, 291, 273, 251, 260, 287, 242, 240, 231,
    236, 176, 149, 175, 166, 135, 141, 136, 120,
)  # fmt: skip

# Age in whole years at REFERENCE_DATE, 20..69: the counts of `age` in the per-client table.
AGE_COUNTS = (
    1, 7, 85, 213, 289, 476, 507, 987, 1132, 980, 1029, 903, 993, 1073, 1021, 1042, 925, 1176,
    1073, 1158, 1067, 1157, 1023, 947, 988, 799, 899, 843, 842, 796, 830, 921, 741, 781, 804,
    756, 797, 792, 745, 770, 836, 627, 614, 510, 600, 396, 318, 130, 51, 7,
)  # fmt: skip

# Whole years on the job at REFERENCE_DATE, 0..43, for non-pensioners: the counts of the
# non-null `years_on_the_job` in the per-client table (30,322 clients).
YEARS_ON_JOB_COUNTS = (
    1749, 3128, 2930, 2892, 2861, 2272, 1983, 1846, 1751, 1440, 1180, 798, 742, 610, 572, 639,
    329, 251, 268, 256, 320, 204, 181, 171, 126, 136, 115, 97, 66, 91, 41, 37, 47, 35, 37, 28,
    11, 12, 13, 12, 14, 26, 0, 5,
)  # fmt: skip

# Share of pensioners (null years_on_the_job in the per-client table) by age band: ages up to
# 29, 34, 39, ..., 69. Overall 6,135 / 36,457 = 16.8 %.
PENSIONER_AGE_EDGES = (29, 34, 39, 44, 49, 54, 59, 64, 69)
PENSIONER_SHARE_BY_AGE = (0.0049, 0.0026, 0.0054, 0.0079, 0.0299, 0.1084, 0.5560, 0.7772, 0.9302)

# Gap between consecutive client ids: the counts of 1..10 in the per-client table, then its
# rarer gaps lumped together: 160 gaps of 11..50 (mean 19) and 37 of 398..7,369 (mean 2,451),
# so that 36,457 clients span about 5008804..5150487.
ID_GAP_VALUES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
ID_GAP_COUNTS = (29727, 3836, 1486, 611, 291, 142, 71, 45, 27, 23)
ID_GAP_MID_COUNT, ID_GAP_MID_RANGE = 160, (11, 28)
ID_GAP_LARGE_COUNT, ID_GAP_LARGE_RANGE = 37, (300, 4601)

# Loan amount = 100 + Gamma(shape, scale), below 400. The per-client table's
# avg_amount_loans_previous for clients with one earlier loan (one amount each, 955 clients)
# has mean 129.6, sd 35.2, median 118.2, range 100..399; its mean stays near 129 and its sd
# falls as 35 / sqrt(n) with n loans, so the amounts are drawn independently per loan.
AMOUNT_MIN, AMOUNT_MAX = 100.0, 400.0
AMOUNT_GAMMA_SHAPE, AMOUNT_GAMMA_SCALE = 0.715, 41.4

# flag_own_car = "Y" for 37.97 % of clients in the per-client table (13,843 / 36,457); men
# own a car more often (as in Kaggle's application_record), pensioners less often.
OWN_CAR_BY_SEX = {"F": 0.27, "M": 0.62}
OWN_CAR_PENSIONER_FACTOR = 0.55

# Days between a client's consecutive loans: 0 (same date, a tie) with this probability,
# else 1 + Gamma(2, 15) (a mean of about a month).
SAME_DATE_SHARE = 0.03
GAP_GAMMA_SHAPE, GAP_GAMMA_SCALE = 2.0, 15.0
# A client's last loan is LOAN_END minus an exponential lag of this mean (days).
LAST_LOAN_LAG_DAYS = 365.0

# Missing values.
MISSING_JOB_START_SHARE = 0.002  # clients
MISSING_OWN_CAR_SHARE = 0.003  # clients
MISSING_OCCUPATION_SHARE = 0.17  # non-pensioner clients (pensioners never have one)
MISSING_LOAN_AMOUNT_SHARE = 0.0005  # loans

# Categorical shares, approximately those of Kaggle's application_record.
GENDERS = {"F": 0.67, "M": 0.33}
INCOME_TYPES_NOT_PENSIONER = {
    "Working": 0.6198,
    "Commercial associate": 0.2755,
    "State servant": 0.1042,
    "Student": 0.0005,
}
EDUCATION = {
    "Secondary / secondary special": 0.678,
    "Higher education": 0.271,
    "Incomplete higher": 0.039,
    "Lower secondary": 0.011,
    "Academic degree": 0.001,
}
FAMILY_STATUS = {
    "Married": 0.684,
    "Single / not married": 0.132,
    "Civil marriage": 0.080,
    "Separated": 0.058,
    "Widow": 0.046,
}
HOUSING = {
    "House / apartment": 0.893,
    "With parents": 0.049,
    "Municipal apartment": 0.032,
    "Rented apartment": 0.016,
    "Office apartment": 0.007,
    "Co-op apartment": 0.003,
}
OCCUPATIONS = {
    "Laborers": 0.247,
    "Core staff": 0.142,
    "Sales staff": 0.134,
    "Managers": 0.120,
    "Drivers": 0.085,
    "High skill tech staff": 0.055,
    "Accountants": 0.049,
    "Medicine staff": 0.048,
    "Cooking staff": 0.026,
    "Security staff": 0.023,
    "Cleaning staff": 0.020,
    "Private service staff": 0.013,
    "Low-skill Laborers": 0.007,
    "Secretaries": 0.006,
    "Waiters/barmen staff": 0.006,
    "Realty agents": 0.003,
    "HR staff": 0.003,
    "IT staff": 0.003,
}
CHILDREN = {0: 0.690, 1: 0.205, 2: 0.090, 3: 0.012, 4: 0.002, 5: 0.001}
OWN_REALTY_SHARE = 0.67
WORK_PHONE_SHARE, PHONE_SHARE, EMAIL_SHARE = 0.225, 0.294, 0.090
INCOME_MEDIAN, INCOME_SIGMA, INCOME_STEP = 157_500.0, 0.5, 4_500.0
INCOME_MIN, INCOME_MAX = 27_000.0, 1_575_000.0

# The status formula (see the docstring).
STATUS_INTERCEPT = -3.1
STATUS_FIRST_LOAN = 0.55
STATUS_LOG_PREVIOUS = -0.30
STATUS_AVG_AMOUNT = 0.45
STATUS_AGE = -0.035
STATUS_JOB_YEARS = -0.07
STATUS_JOB_MISSING = 0.25
STATUS_OWN_CAR = -0.45
STATUS_FRAILTY_SD = 0.6

DAYS_PER_YEAR = 365.25

COLUMNS = [
    "loan_id", "id", "code_gender", "flag_own_car", "flag_own_realty", "cnt_children",
    "amt_income_total", "name_income_type", "name_education_type", "name_family_status",
    "name_housing_type", "days_birth", "days_employed", "flag_mobil", "flag_work_phone",
    "flag_phone", "flag_email", "occupation_type", "cnt_fam_members", "status", "birthday",
    "job_start_date", "loan_date", "loan_amount",
]  # fmt: skip


def _shares(counts: tuple[int, ...] | tuple[float, ...]) -> np.ndarray:
    weights = np.asarray(counts, dtype=float)
    return weights / weights.sum()


def _pick(rng: np.random.Generator, shares: dict[str, float], size: int) -> np.ndarray:
    """Draw labels with the given shares, as an object array of Python strings."""
    labels = np.array(list(shares), dtype=object)
    return labels[rng.choice(len(labels), size=size, p=_shares(tuple(shares.values())))]


def _iso(days: np.ndarray) -> np.ndarray:
    """ISO date strings (an object array) of datetime64[D] days, each distinct day done once."""
    unique, inverse = np.unique(days, return_inverse=True)
    return np.datetime_as_string(unique, unit="D").astype(object)[inverse]


def _loans_per_client(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Loans of each client, drawn until they sum to `rows` (the last client is cut short)."""
    values = np.arange(1, len(LOANS_PER_CLIENT_COUNTS) + 1)
    shares = _shares(LOANS_PER_CLIENT_COUNTS)
    counts = np.empty(0, dtype=np.int64)
    while counts.sum() < rows:
        batch = int((rows - counts.sum()) / (values @ shares) * 1.1) + 16
        counts = np.concatenate([counts, rng.choice(values, size=batch, p=shares)])
    total = np.cumsum(counts)
    clients = int(np.searchsorted(total, rows)) + 1
    counts = counts[:clients]
    counts[-1] -= total[clients - 1] - rows
    return counts


def _client_ids(rng: np.random.Generator, clients: int) -> np.ndarray:
    counts = np.array((*ID_GAP_COUNTS, ID_GAP_MID_COUNT, ID_GAP_LARGE_COUNT), dtype=float)
    kind = rng.choice(len(counts), size=clients - 1, p=counts / counts.sum())
    gaps = np.asarray((*ID_GAP_VALUES, 0, 0), dtype=np.int64)[kind]
    mid, large = kind == len(ID_GAP_VALUES), kind == len(ID_GAP_VALUES) + 1
    gaps[mid] = rng.integers(*ID_GAP_MID_RANGE, size=int(mid.sum()))
    gaps[large] = rng.integers(*ID_GAP_LARGE_RANGE, size=int(large.sum()))
    return FIRST_CLIENT_ID + np.concatenate([[0], np.cumsum(gaps)])


def _clients(rng: np.random.Generator, clients: int) -> dict[str, np.ndarray]:
    """One value per client for every client-level column, plus hidden `frailty`."""
    n = clients
    age = 20 + rng.choice(len(AGE_COUNTS), size=n, p=_shares(AGE_COUNTS))
    days_birth = -np.floor((age + rng.random(n)) * DAYS_PER_YEAR).astype(np.int64)
    band = np.searchsorted(PENSIONER_AGE_EDGES, age)
    pensioner = rng.random(n) < np.asarray(PENSIONER_SHARE_BY_AGE)[band]

    years = rng.choice(len(YEARS_ON_JOB_COUNTS), size=n, p=_shares(YEARS_ON_JOB_COUNTS))
    room = age - 18  # a job starts at 17 or later
    too_long = years > room
    years[too_long] = np.floor(rng.random(int(too_long.sum())) * (room[too_long] + 1))
    days_employed = -np.maximum(
        np.floor((years + rng.random(n)) * DAYS_PER_YEAR).astype(np.int64), 17
    )
    days_employed[pensioner] = PENSIONER_DAYS_EMPLOYED

    gender = _pick(rng, GENDERS, n)
    car_share = np.where(gender == "M", OWN_CAR_BY_SEX["M"], OWN_CAR_BY_SEX["F"])
    car_share = np.where(pensioner, car_share * OWN_CAR_PENSIONER_FACTOR, car_share)
    own_car = rng.random(n) < car_share
    flag_own_car = np.where(own_car, "Y", "N").astype(object)
    flag_own_car[rng.random(n) < MISSING_OWN_CAR_SHARE] = None

    income_type = _pick(rng, INCOME_TYPES_NOT_PENSIONER, n)
    income_type[pensioner] = "Pensioner"
    occupation = _pick(rng, OCCUPATIONS, n)
    occupation[pensioner | (rng.random(n) < MISSING_OCCUPATION_SHARE)] = None

    family = _pick(rng, FAMILY_STATUS, n)
    children_values = np.array(list(CHILDREN))
    children = children_values[
        rng.choice(len(children_values), size=n, p=_shares(tuple(CHILDREN.values())))
    ]
    couple = np.isin(family, ["Married", "Civil marriage"])
    income = np.exp(np.log(INCOME_MEDIAN) + INCOME_SIGMA * rng.standard_normal(n))
    income = np.clip(np.round(income / INCOME_STEP) * INCOME_STEP, INCOME_MIN, INCOME_MAX)

    job_start = _iso(REFERENCE_DATE + days_employed)
    no_job_start = rng.random(n) < MISSING_JOB_START_SHARE
    job_start[no_job_start] = None
    return {
        "code_gender": gender,
        "flag_own_car": flag_own_car,
        "flag_own_realty": np.where(rng.random(n) < OWN_REALTY_SHARE, "Y", "N").astype(object),
        "cnt_children": children.astype(np.int64),
        "amt_income_total": income,
        "name_income_type": income_type,
        "name_education_type": _pick(rng, EDUCATION, n),
        "name_family_status": family,
        "name_housing_type": _pick(rng, HOUSING, n),
        "days_birth": days_birth,
        "days_employed": days_employed,
        "flag_mobil": np.ones(n, dtype=np.int64),
        "flag_work_phone": (~pensioner & (rng.random(n) < WORK_PHONE_SHARE)).astype(np.int64),
        "flag_phone": (rng.random(n) < PHONE_SHARE).astype(np.int64),
        "flag_email": (rng.random(n) < EMAIL_SHARE).astype(np.int64),
        "occupation_type": occupation,
        "cnt_fam_members": (1 + children + couple).astype(float),
        "birthday": _iso(REFERENCE_DATE + days_birth),
        "job_start_date": job_start,
        # hidden, for the status formula only
        "_birth_day": REFERENCE_DATE + days_birth,
        "_job_day": REFERENCE_DATE + days_employed,
        "_no_job_start": no_job_start,
        "_own_car": flag_own_car == "Y",
        "_frailty": STATUS_FRAILTY_SD * rng.standard_normal(n),
    }


def _loan_days(
    rng: np.random.Generator, loans: np.ndarray, first: np.ndarray, birth_day: np.ndarray
) -> np.ndarray:
    """Loan dates (datetime64[D]) per loan, ascending within each client; ties allowed.

    A client's loans fall between LOAN_START (or its 18th birthday, if later) and LOAN_END;
    its last loan is LOAN_END minus an exponential lag, so recent years hold more loans.
    """
    rows = int(loans.sum())
    gaps = 1 + np.floor(rng.gamma(GAP_GAMMA_SHAPE, GAP_GAMMA_SCALE, size=rows))
    gaps[rng.random(rows) < SAME_DATE_SHARE] = 0
    gaps[first] = 0
    offset = np.cumsum(gaps)
    offset -= np.repeat(offset[first], loans)  # days since the client's first loan
    last = np.concatenate([first[1:], [rows]]) - 1
    span = offset[last]
    adult = birth_day + np.timedelta64(int(np.ceil(18 * DAYS_PER_YEAR)), "D")
    window = (LOAN_END - np.maximum(adult, LOAN_START)).astype(np.int64).astype(float)
    scale = np.minimum(1.0, window / np.maximum(span, 1))  # squeeze a history too long
    span = np.floor(span * scale)
    lag = np.minimum(np.floor(rng.exponential(LAST_LOAN_LAG_DAYS, size=len(loans))), window - span)
    start = (LOAN_END - LOAN_START).astype(np.int64) - lag - span
    days = np.repeat(start, loans) + np.floor(offset * np.repeat(scale, loans))
    return LOAN_START + days.astype(np.int64)


def generate(rows: int = DEFAULT_ROWS, seed: int = 0) -> pd.DataFrame:
    """The synthetic loans table: `rows` loans, the 24 columns of `COLUMNS`."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    loans = _loans_per_client(rng, rows)
    n_clients = len(loans)
    ids = _client_ids(rng, n_clients)
    client = _clients(rng, n_clients)

    # Loans in time order: each client's rows are contiguous, its first row at `first`.
    owner = np.repeat(np.arange(n_clients), loans)
    first = np.concatenate([[0], np.cumsum(loans)[:-1]])
    loan_day = _loan_days(rng, loans, first, client["_birth_day"])
    amount = AMOUNT_MIN + rng.gamma(AMOUNT_GAMMA_SHAPE, AMOUNT_GAMMA_SCALE, size=rows)
    too_big = amount >= AMOUNT_MAX
    amount[too_big] = rng.uniform(AMOUNT_MIN, AMOUNT_MAX, size=int(too_big.sum()))
    amount[rng.random(rows) < MISSING_LOAN_AMOUNT_SHARE] = np.nan

    # Point-in-time features over strictly earlier dates: a loan sees the rows before the
    # first row of its (client, date) run.
    index = np.arange(rows)
    client_first = first[owner]
    new_run = (index == client_first) | (loan_day != np.roll(loan_day, 1))
    run_first = np.maximum.accumulate(np.where(new_run, index, 0))
    n_previous = run_first - client_first
    amount_sum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(amount))])
    amount_n = np.concatenate([[0], np.cumsum(~np.isnan(amount))])
    known = amount_n[run_first] - amount_n[client_first]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_previous = (amount_sum[run_first] - amount_sum[client_first]) / known
    age = (loan_day - client["_birth_day"][owner]).astype(float) / DAYS_PER_YEAR
    job = (loan_day - client["_job_day"][owner]).astype(float) / DAYS_PER_YEAR
    # Unknown: the 3021 pensioner dates, jobs that start after the loan, missing job starts.
    job[(job < 0) | client["_no_job_start"][owner]] = np.nan

    logit = (
        STATUS_INTERCEPT
        + STATUS_FIRST_LOAN * (n_previous == 0)
        + STATUS_LOG_PREVIOUS * np.log1p(n_previous)
        + STATUS_AVG_AMOUNT * np.nan_to_num(np.clip((avg_previous - 130.0) / 20.0, -1.5, 5.0))
        + STATUS_AGE * (age - 40.0)
        + STATUS_JOB_YEARS * np.nan_to_num(np.minimum(job, 15.0))
        + STATUS_JOB_MISSING * np.isnan(job)
        + STATUS_OWN_CAR * client["_own_car"][owner]
        + client["_frailty"][owner]
    )
    status = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    # Output order: by client id, newest loan first within a client; loan_id follows the rows.
    order = np.lexsort((-index, owner))
    owner = owner[order]
    columns: dict[str, np.ndarray] = {
        "loan_id": np.arange(1, rows + 1, dtype=np.int64),
        "id": ids[owner],
    }
    for name in COLUMNS:
        if name in client:
            columns[name] = client[name][owner]
    columns["status"] = status[order]
    columns["loan_date"] = _iso(loan_day[order])
    columns["loan_amount"] = amount[order]
    return pd.DataFrame({name: columns[name] for name in COLUMNS})


def write(frame: pd.DataFrame, output: Path) -> None:
    """Write `frame` as Parquet, CSV or gzipped CSV, chosen by the suffix of `output`."""
    name = output.name.lower()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith((".parquet", ".pq")):
        pq.write_table(table, output)
    elif name.endswith(".csv"):
        pacsv.write_csv(table, output)
    elif name.endswith(".csv.gz"):
        with pa.CompressedOutputStream(str(output), "gzip") as stream:
            pacsv.write_csv(table, stream)
    else:
        raise ValueError(f"unknown output format {output.name!r}: use .parquet, .csv or .csv.gz")


def summary(frame: pd.DataFrame) -> str:
    """A few lines describing the table: size, clients, 3021 dates, bad rate, nulls."""
    clients = frame["id"].nunique()
    year_3021 = frame["job_start_date"].str.startswith("3021").fillna(False)
    nulls = frame.isna().sum()
    nulls = ", ".join(f"{name} {count:,}" for name, count in nulls[nulls > 0].items())
    return "\n".join(
        [
            f"rows {len(frame):,}, clients {clients:,}, "
            f"loans per client {len(frame) / clients:.2f}",
            f"loan_date {frame['loan_date'].min()} .. {frame['loan_date'].max()}",
            f"job_start_date in 3021: {year_3021.mean():.2%} of rows, "
            f"{frame.loc[year_3021, 'id'].nunique() / clients:.2%} of clients",
            f"bad rate (status = 1): {frame['status'].mean():.2%} of loans",
            f"nulls: {nulls or 'none'}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a SYNTHETIC raw credit-risk loans table (Kueski-shaped)."
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="loans (default 777,715)")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="a .parquet, .csv or .csv.gz file (default loans.parquet beside this script)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    frame = generate(args.rows, args.seed)
    write(frame, args.output)
    elapsed = time.perf_counter() - started
    print(f"wrote {args.output} in {elapsed:.1f} s (synthetic data, seed {args.seed})")
    print(summary(frame))
    return 0


if __name__ == "__main__":
    sys.exit(main())
