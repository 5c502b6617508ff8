//! A wallet's monthly statement: what the ledger held when a UTC calendar
//! month began, what came in and went out during it, and what it held when
//! the month ended. Pure: computed from the wallet's state, nothing stored.
//!
//! The rules, and the choices behind them:
//!
//! - **The month** is `[first day 00:00 UTC, first day of the next month
//!   00:00 UTC)`: an entry exactly at midnight on the first belongs to the
//!   month it opens, never to the one before.
//! - **Which entries** by their `at` (a bill's is the chain's block time),
//!   not by their place in the ledger: a bill can be recorded after a
//!   top-up yet be dated before it.
//! - **Amounts** are TFT base units (`i128`). Lines and totals of what went
//!   out are the amount taken, positive, so that
//!   `opening + credits − bills − other debits == closing`, exactly, and
//!   the closing balance is the sum of the ledger up to the month's end.
//! - **Bills** are grouped by the deployment they name (the ledger's
//!   `reference`, `contract-<id>` when none was known) and, within it, summed
//!   per contract: a contract billed hourly would otherwise fill pages.
//! - A month before the wallet opened, or one still to come, is allowed: it
//!   has no lines and carries the balance through.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::aggregate::WalletState;
use super::values::{EntryKind, LedgerEntry, SpecError};
use crate::money::UNITS_PER_WHOLE;

/// A UTC calendar month, as `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StatementMonth {
    year: i32,
    month: u32,
}

impl StatementMonth {
    /// Validates a month: a year of four digits (1 to 9999) and a month
    /// 1 to 12.
    pub fn new(year: i32, month: u32) -> Result<Self, SpecError> {
        if !(1..=9999).contains(&year) {
            return Err(SpecError::new("month", "the year must be 0001 to 9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(SpecError::new("month", "the month must be 01 to 12"));
        }
        Ok(Self { year, month })
    }

    /// Reads `YYYY-MM`: exactly four digits, `-`, two digits.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let b = text.as_bytes();
        let shaped =
            b.len() == 7 && b[4] == b'-' && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit);
        if !shaped {
            return Err(SpecError::new("month", "must be YYYY-MM, e.g. 2026-11"));
        }
        let year = text[..4]
            .parse()
            .map_err(|_| SpecError::new("month", "must be YYYY-MM, e.g. 2026-11"))?;
        let month = text[5..]
            .parse()
            .map_err(|_| SpecError::new("month", "must be YYYY-MM, e.g. 2026-11"))?;
        Self::new(year, month)
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// Its first instant: the 1st, 00:00 UTC.
    pub fn start(self) -> DateTime<Utc> {
        first_instant(self.year, self.month)
    }

    /// The first instant after it: the next month's 1st, 00:00 UTC.
    pub fn end(self) -> DateTime<Utc> {
        if self.month == 12 {
            first_instant(self.year + 1, 1)
        } else {
            first_instant(self.year, self.month + 1)
        }
    }

    /// Whether an instant falls in it.
    pub fn contains(self, at: DateTime<Utc>) -> bool {
        self.start() <= at && at < self.end()
    }
}

/// The 1st of a month at 00:00 UTC. Every year 1 to 10000 and month 1 to
/// 12 has one; the fallback is unreachable for a validated month.
fn first_instant(year: i32, month: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl std::fmt::Display for StatementMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// One credit or non-bill debit of the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    /// What it records.
    pub kind: EntryKind,
    /// The payment intent, debit, refund or dispute id.
    pub reference: String,
    /// When.
    pub at: DateTime<Utc>,
    /// TFT base units: credited for a credit, taken for a debit (positive
    /// either way).
    pub amount: i128,
}

/// A contract's bills in the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractBills {
    /// The chain contract (0 only if a bill came without one, which the
    /// wallet never records).
    pub contract_id: u64,
    /// How many bills.
    pub count: u64,
    /// TFT base units taken by them.
    pub total: i128,
}

/// A deployment's bills in the month, per contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentBills {
    /// The deployment, or `contract-<id>` when the bill named none.
    pub reference: String,
    /// Its contracts, by contract id.
    pub contracts: Vec<ContractBills>,
    /// TFT base units taken from the wallet for it.
    pub total: i128,
}

/// A wallet's statement of one calendar month (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The month.
    pub month: StatementMonth,
    /// The sum of the ledger before the month.
    pub opening_balance: i128,
    /// Top-ups and SLA credits credited in the month, oldest first.
    pub credits: Vec<StatementLine>,
    /// Debits, refunds and disputes in the month, oldest first.
    pub other_debits: Vec<StatementLine>,
    /// Bills in the month, by deployment reference.
    pub bills: Vec<DeploymentBills>,
    /// Sum of `credits`.
    pub total_credits: i128,
    /// Sum of `bills`' totals.
    pub total_bills: i128,
    /// Sum of `other_debits`.
    pub total_other_debits: i128,
    /// `opening + credits − bills − other debits`: the sum of the ledger up
    /// to the month's end.
    pub closing_balance: i128,
}

impl Statement {
    /// The statement of `year`-`month` (UTC) from the wallet's ledger.
    pub fn for_month(state: &WalletState, year: i32, month: u32) -> Result<Self, SpecError> {
        Ok(Self::of(state.ledger(), StatementMonth::new(year, month)?))
    }

    /// The statement of a month from a ledger.
    pub fn of(ledger: &[LedgerEntry], month: StatementMonth) -> Self {
        let (start, end) = (month.start(), month.end());
        let opening_balance = ledger
            .iter()
            .filter(|e| e.at < start)
            .map(|e| e.amount)
            .sum();
        let mut within: Vec<&LedgerEntry> = ledger
            .iter()
            .filter(|e| start <= e.at && e.at < end)
            .collect();
        // Stable: entries at the same instant keep the ledger's order.
        within.sort_by_key(|e| e.at);

        let mut credits = Vec::new();
        let mut other_debits = Vec::new();
        let mut bills: BTreeMap<&str, BTreeMap<u64, ContractBills>> = BTreeMap::new();
        for e in within {
            let line = |amount| StatementLine {
                kind: e.kind,
                reference: e.reference.clone(),
                at: e.at,
                amount,
            };
            match e.kind {
                EntryKind::TopUp | EntryKind::SlaCredit => credits.push(line(e.amount)),
                EntryKind::Debit | EntryKind::Refund | EntryKind::Dispute => {
                    other_debits.push(line(-e.amount))
                }
                EntryKind::Bill => {
                    let contract_id = e.contract_id.unwrap_or_default();
                    let c = bills
                        .entry(e.reference.as_str())
                        .or_default()
                        .entry(contract_id)
                        .or_insert(ContractBills {
                            contract_id,
                            count: 0,
                            total: 0,
                        });
                    c.count += u64::from(e.bills.max(1));
                    c.total -= e.amount;
                }
            }
        }
        let bills: Vec<DeploymentBills> = bills
            .into_iter()
            .map(|(reference, contracts)| {
                let contracts: Vec<ContractBills> = contracts.into_values().collect();
                DeploymentBills {
                    reference: reference.to_string(),
                    total: contracts.iter().map(|c| c.total).sum(),
                    contracts,
                }
            })
            .collect();
        let total_credits: i128 = credits.iter().map(|l| l.amount).sum();
        let total_other_debits: i128 = other_debits.iter().map(|l| l.amount).sum();
        let total_bills: i128 = bills.iter().map(|d| d.total).sum();
        Self {
            month,
            opening_balance,
            closing_balance: opening_balance + total_credits - total_bills - total_other_debits,
            credits,
            other_debits,
            bills,
            total_credits,
            total_bills,
            total_other_debits,
        }
    }
}

/// TFT base units as a signed decimal with all seven places:
/// `-12.3400000`, `0.0000001`, `0.0000000`.
pub fn tft_with_seven_decimals(units: i128) -> String {
    let per = u128::from(UNITS_PER_WHOLE);
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    format!("{sign}{}.{:07}", magnitude / per, magnitude % per)
}
