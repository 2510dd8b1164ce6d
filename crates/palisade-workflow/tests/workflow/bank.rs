//! A bank account aggregate shared by the tests.

#![allow(dead_code, unreachable_pub)]

use palisade_workflow::Aggregate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
    pub applied: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccountEvent {
    Deposited { amount: i64 },
    Withdrawn { amount: i64 },
}

#[derive(Debug, Clone)]
pub enum AccountCommand {
    Deposit(i64),
    Withdraw(i64),
    Nothing,
}

#[derive(Debug)]
pub struct InsufficientFunds;

impl std::fmt::Display for InsufficientFunds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("insufficient funds")
    }
}
impl std::error::Error for InsufficientFunds {}

impl Aggregate for Account {
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = InsufficientFunds;

    fn event_type(event: &AccountEvent) -> &'static str {
        match event {
            AccountEvent::Deposited { .. } => "deposited",
            AccountEvent::Withdrawn { .. } => "withdrawn",
        }
    }

    fn apply(&mut self, event: AccountEvent) {
        self.applied += 1;
        match event {
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, InsufficientFunds> {
        match *command {
            AccountCommand::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
            AccountCommand::Withdraw(amount) if amount > self.balance => Err(InsufficientFunds),
            AccountCommand::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount }]),
            AccountCommand::Nothing => Ok(vec![]),
        }
    }
}
