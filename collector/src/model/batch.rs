//! A batch moving through a pipeline: data plus its claim on the pipeline's item budget.

use super::budget::Ticket;
use super::signal::SignalData;

/// A batch moving through a pipeline, with its claim on the pipeline's item budget.
#[derive(Debug)]
pub struct Batch {
    pub data: SignalData,
    pub ticket: Ticket,
}

impl Batch {
    pub fn item_count(&self) -> usize {
        self.data.item_count()
    }

    /// Splits off the first `n` items with their share of the ticket.
    pub fn split_front(&mut self, n: usize) -> Batch {
        let data = self.data.split_front(n);
        let ticket = self.ticket.split(data.item_count());
        Batch { data, ticket }
    }

    pub fn append(&mut self, other: Batch) {
        self.data.append(other.data);
        self.ticket.merge(other.ticket);
    }
}
