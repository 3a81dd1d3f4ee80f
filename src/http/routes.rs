//! The route table: every route is registered through [`Routes`], which
//! hands it to actix and writes it down, so the API document can be held
//! to the routes the server really serves (`openapi`'s tests compare the
//! two both ways). Handlers' modules never see actix's `ServiceConfig`.

use actix_web::{FromRequest, Handler, Responder, http::Method, web};

/// One registered route: its method and its full path, in the document's
/// spelling (`/api/v1/logs/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteEntry {
    pub method: String,
    pub path: String,
}

/// Registers routes with actix and records them.
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    prefix: String,
    table: &'a mut Vec<RouteEntry>,
}

impl std::fmt::Debug for Routes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").field("prefix", &self.prefix).field("table", &self.table).finish_non_exhaustive()
    }
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig, table: &'a mut Vec<RouteEntry>) -> Self {
        Self { cfg, prefix: String::new(), table }
    }

    pub fn get<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, web::get().to(handler))
    }

    pub fn post<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, web::post().to(handler))
    }

    pub fn put<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::PUT, path, web::put().to(handler))
    }

    pub fn delete<F, Args>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::DELETE, path, web::delete().to(handler))
    }

    /// Routes under `prefix`, as one actix scope.
    pub fn scope(&mut self, prefix: &str, register: impl FnOnce(&mut Routes<'_>)) -> &mut Self {
        let full = format!("{}{prefix}", self.prefix);
        let table = &mut *self.table;
        self.cfg.service(web::scope(prefix).configure(|cfg| {
            let mut inner = Routes { cfg, prefix: full, table };
            register(&mut inner);
        }));
        self
    }

    fn add(&mut self, method: Method, path: &str, route: actix_web::Route) -> &mut Self {
        self.table
            .push(RouteEntry { method: method.as_str().to_ascii_lowercase(), path: format!("{}{path}", self.prefix) });
        self.cfg.route(path, route);
        self
    }
}

/// Every route `register` makes, in order, without serving any.
pub fn table(register: impl FnOnce(&mut Routes<'_>)) -> Vec<RouteEntry> {
    let mut table = Vec::new();
    let _app = actix_web::App::new().configure(|cfg| register(&mut Routes::new(cfg, &mut table)));
    table
}
