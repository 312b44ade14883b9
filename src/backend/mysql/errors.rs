//! MySQL's errors as poolbench counts them, from mysql_async (the admin
//! session) and from poolbench's own wire code (measured connections)
//! alike: server error codes (1040 too many connections, 1045 access
//! denied, 1205/1213 and the rest as query errors by code), lost
//! connections and I/O as on PostgreSQL.

use mysql_async::{DriverError, Error, IoError};

use super::wire::WireError;

use crate::backend::postgres::io_error_class;
use crate::metrics::{ErrorClass, RequestError};

/// The class of an error from a connect or a statement.
pub fn error_class(e: &Error) -> ErrorClass {
    match e {
        Error::Server(s) => server_class(s.code),
        Error::Io(IoError::Io(io)) => io_error_class(io),
        Error::Driver(DriverError::ConnectionClosed) => ErrorClass::ConnectionLost,
        _ => ErrorClass::Other,
    }
}

/// The class of a server's error number.
fn server_class(code: u16) -> ErrorClass {
    match code {
        // ER_CON_COUNT_ERROR
        1040 => ErrorClass::TooManyConnections,
        // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR
        1045 | 1044 => ErrorClass::AuthFailed,
        // ER_SERVER_SHUTDOWN
        1053 => ErrorClass::ServerShutdown,
        // ER_CONNECTION_KILLED
        1927 => ErrorClass::ConnectionLost,
        code => ErrorClass::Query(code.to_string()),
    }
}

/// A measured connection's error as a request's error: the same classes,
/// words and SQLSTATE as the driver's.
pub fn wire_error(e: &WireError) -> RequestError {
    let class = match e {
        WireError::Server(s) => server_class(s.code),
        WireError::Io(io) => io_error_class(io),
        WireError::Closed => ErrorClass::ConnectionLost,
        WireError::Protocol(_) => ErrorClass::Other,
    };
    let mut text = e.to_string();
    if let WireError::Io(io) = e {
        // TLS's own words (a refused certificate) are inside the I/O error.
        if let Some(inner) = io.get_ref() {
            let next = inner.to_string();
            if !text.contains(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
        }
    }
    let error = RequestError::new(class, text);
    match e {
        WireError::Server(s) => error.with_sqlstate(&s.state),
        _ => error,
    }
}

/// One line: the server's code, SQLSTATE and message, or the cause chain.
pub fn describe(e: &Error) -> String {
    if let Error::Server(s) = e {
        return format!("ERROR {} ({}): {}", s.code, s.state, s.message);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// An error as a request's error: its class, description and the
/// server's SQLSTATE (sent beside its error number).
pub fn request_error(e: &Error) -> RequestError {
    let error = RequestError::new(error_class(e), describe(e));
    match e {
        Error::Server(s) => error.with_sqlstate(&s.state),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    fn server(code: u16) -> Error {
        Error::Server(ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    #[test]
    fn server_codes_map_to_classes() {
        assert_eq!(error_class(&server(1040)), ErrorClass::TooManyConnections);
        assert_eq!(error_class(&server(1045)), ErrorClass::AuthFailed);
        assert_eq!(error_class(&server(1213)), ErrorClass::Query("1213".into()));
        assert_eq!(error_class(&server(1205)), ErrorClass::Query("1205".into()));
        let refused = Error::Io(IoError::Io(std::io::ErrorKind::ConnectionRefused.into()));
        assert_eq!(error_class(&refused), ErrorClass::ConnectionRefused);
        let lost = Error::Driver(DriverError::ConnectionClosed);
        assert_eq!(error_class(&lost), ErrorClass::ConnectionLost);
        assert_eq!(describe(&server(1040)), "ERROR 1040 (HY000): m");
    }

    #[test]
    fn a_server_error_carries_its_sqlstate() {
        let e = request_error(&server(1243));
        assert_eq!(e.sqlstate.map(|s| s.to_string()).as_deref(), Some("HY000"));
        assert_eq!(e.class, ErrorClass::Query("1243".into()));
        let lost = request_error(&Error::Driver(DriverError::ConnectionClosed));
        assert_eq!(lost.sqlstate, None);
    }

    #[test]
    fn the_wire_codes_errors_as_the_driver_does() {
        let e = wire_error(&WireError::Server(super::super::wire::ServerError {
            code: 1045,
            state: "28000".into(),
            message: "Access denied for user 'u'".into(),
        }));
        assert_eq!(e.class, ErrorClass::AuthFailed);
        assert_eq!(e.sqlstate.map(|s| s.to_string()).as_deref(), Some("28000"));
        assert_eq!(
            wire_error(&WireError::Closed).class,
            ErrorClass::ConnectionLost
        );
        let refused = WireError::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(wire_error(&refused).class, ErrorClass::ConnectionRefused);
    }
}
