//! Moving a value between two type parameters that are the same type.

use std::any::Any;

/// `value` as a `U`, when `T` and `U` are the same type — which the caller has checked by
/// comparing their [`TypeId`](std::any::TypeId)s (e.g. to reach a backend-specific fast path
/// from code generic over `B: Backend`). A checked `Any` downcast: no `unsafe`.
///
/// # Panics
/// If `T` and `U` differ (a caller's bug).
pub fn same_type<T: 'static, U: 'static>(value: T) -> U {
    *(Box::new(value) as Box<dyn Any>)
        .downcast::<U>()
        .expect("the caller compared the TypeIds")
}
