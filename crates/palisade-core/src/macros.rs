//! Macros shared by the pattern crates.

/// Defines `get_ref`, `get_mut` and `into_inner` on a service that wraps an inner service.
///
/// Every Palisade service gives access to the service it wraps with the same three
/// methods, as tower's and tower-http's services do (tower-http generates them with a
/// macro of the same name). Invoke it inside the service's inherent `impl` block:
///
/// - `define_inner_service_accessors!();` when the inner service is the field `inner`
///   of type `S`;
/// - `define_inner_service_accessors!(field: T);` when it is the field `field` of type `T`.
///
/// # Example
///
/// ```
/// /// A service that does nothing but call `inner`.
/// #[derive(Debug, Clone)]
/// pub struct Passthrough<S> {
///     inner: S,
/// }
///
/// impl<S> Passthrough<S> {
///     palisade_core::define_inner_service_accessors!();
/// }
///
/// let mut svc = Passthrough { inner: 7_u8 };
/// *svc.get_mut() += 1;
/// assert_eq!(*svc.get_ref(), 8);
/// assert_eq!(svc.into_inner(), 8);
/// ```
#[macro_export]
macro_rules! define_inner_service_accessors {
    () => {
        $crate::define_inner_service_accessors!(inner: S);
    };
    ($field:ident : $inner:ty) => {
        /// Gets a reference to the inner service.
        pub fn get_ref(&self) -> &$inner {
            &self.$field
        }

        /// Gets a mutable reference to the inner service.
        ///
        /// Calling the inner service directly bypasses this middleware.
        pub fn get_mut(&mut self) -> &mut $inner {
            &mut self.$field
        }

        /// Consumes `self`, returning the inner service.
        pub fn into_inner(self) -> $inner {
            self.$field
        }
    };
}
