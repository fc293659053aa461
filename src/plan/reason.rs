//! Why a cart gets no mail: the skip reasons, as the plan, the printer and
//! the report name them.

use std::fmt;

use serde::Serialize;

/// Why a cart gets no mail in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// The cart was bought, or its customer ordered after its last activity.
    Ordered,
    /// The shop closed the cart.
    Closed,
    /// The customer bought one of the cart's products within `purchased_within`.
    AlreadyPurchased,
    /// The address is on the suppression list.
    Suppressed,
    /// The same address has a more recently active open cart.
    Superseded,
    /// No marketing consent and the policy requires it.
    NoConsent,
    /// Idle longer than `max_age`.
    TooOld,
    /// Last active before `not_before`.
    BeforeNotBefore,
    /// The cart has no items.
    EmptyCart,
    /// The cart total is zero.
    ZeroValue,
    /// The catalog says its products are out of stock.
    OutOfStock,
    /// The step requires SMS consent and the customer did not give it.
    NoSmsConsent,
    /// The cart total is below `min_value`.
    BelowMinValue,
    /// The cart total is above `max_value`.
    AboveMaxValue,
    /// No item matches `include_skus`.
    SkuNotIncluded,
    /// An item matches `exclude_skus`.
    ExcludedSku,
    /// No item matches `include_categories`.
    CategoryNotIncluded,
    /// An item matches `exclude_categories`.
    ExcludedCategory,
    /// The next step's delay has not passed yet.
    NotDue,
    /// Every step was sent.
    Done,
    /// It is night where the customer is.
    QuietHours,
    /// The address had a reminder within `cooldown`.
    Cooldown,
    /// The address had `max_per_address` reminders within `window`.
    FrequencyCap,
    /// Over `max_sends_per_run`: due again next run.
    Budget,
    /// Refused for now by the server; waiting out the backoff.
    RetryWait,
    /// Another run holds a claim on this send.
    Claimed,
    /// An earlier attempt's outcome is unknown; not re-sent automatically.
    Unknown,
    /// An earlier attempt failed permanently.
    Failed,
    /// Over the run's `--limit`.
    Limit,
    /// The step promises a pool coupon and the pool has no usable code left
    /// (set by the run when it composes the mail, not by the plan).
    NoCoupon,
    /// The cart left the store between the plan and composing its mail.
    Gone,
}

impl SkipReason {
    pub const ALL: [SkipReason; 31] = [
        SkipReason::Ordered,
        SkipReason::Closed,
        SkipReason::AlreadyPurchased,
        SkipReason::Suppressed,
        SkipReason::Superseded,
        SkipReason::NoConsent,
        SkipReason::TooOld,
        SkipReason::BeforeNotBefore,
        SkipReason::EmptyCart,
        SkipReason::ZeroValue,
        SkipReason::OutOfStock,
        SkipReason::NoSmsConsent,
        SkipReason::BelowMinValue,
        SkipReason::AboveMaxValue,
        SkipReason::SkuNotIncluded,
        SkipReason::ExcludedSku,
        SkipReason::CategoryNotIncluded,
        SkipReason::ExcludedCategory,
        SkipReason::NotDue,
        SkipReason::Done,
        SkipReason::QuietHours,
        SkipReason::Cooldown,
        SkipReason::FrequencyCap,
        SkipReason::Budget,
        SkipReason::RetryWait,
        SkipReason::Claimed,
        SkipReason::Unknown,
        SkipReason::Failed,
        SkipReason::Limit,
        SkipReason::NoCoupon,
        SkipReason::Gone,
    ];

    /// A step's own condition the cart does not meet: once the step is
    /// due, it is passed over for good and the next step goes on. What the
    /// cart itself is (empty, of zero value, out of stock) fails every
    /// step alike: that waits instead, for a cart that changes.
    pub fn passes_over(self) -> bool {
        matches!(
            self,
            SkipReason::NoConsent
                | SkipReason::NoSmsConsent
                | SkipReason::BelowMinValue
                | SkipReason::AboveMaxValue
                | SkipReason::SkuNotIncluded
                | SkipReason::ExcludedSku
                | SkipReason::CategoryNotIncluded
                | SkipReason::ExcludedCategory
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Ordered => "ordered",
            SkipReason::Closed => "closed",
            SkipReason::AlreadyPurchased => "already-purchased",
            SkipReason::Suppressed => "suppressed",
            SkipReason::Superseded => "superseded",
            SkipReason::NoConsent => "no-consent",
            SkipReason::TooOld => "too-old",
            SkipReason::BeforeNotBefore => "before-not-before",
            SkipReason::EmptyCart => "empty-cart",
            SkipReason::ZeroValue => "zero-value",
            SkipReason::OutOfStock => "out-of-stock",
            SkipReason::NoSmsConsent => "no-sms-consent",
            SkipReason::BelowMinValue => "below-min-value",
            SkipReason::AboveMaxValue => "above-max-value",
            SkipReason::SkuNotIncluded => "sku-not-included",
            SkipReason::ExcludedSku => "excluded-sku",
            SkipReason::CategoryNotIncluded => "category-not-included",
            SkipReason::ExcludedCategory => "excluded-category",
            SkipReason::NotDue => "not-due",
            SkipReason::Done => "done",
            SkipReason::QuietHours => "quiet-hours",
            SkipReason::Cooldown => "cooldown",
            SkipReason::FrequencyCap => "frequency-cap",
            SkipReason::Budget => "budget",
            SkipReason::RetryWait => "retry-wait",
            SkipReason::Claimed => "claimed",
            SkipReason::Unknown => "unknown",
            SkipReason::Failed => "failed",
            SkipReason::Limit => "limit",
            SkipReason::NoCoupon => "no-coupon",
            SkipReason::Gone => "gone",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
