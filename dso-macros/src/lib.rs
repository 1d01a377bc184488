//! `#[shared]`: turns an inherent `impl` block of a shared object type into its sequential
//! specification (operation and result enums plus a deterministic `apply`) and a typed async
//! client handle, so a type's methods are written once and serve the replica, the checker and
//! the client alike.
//!
//! Rules, checked at compile time with a clear message:
//! - every `pub fn` taking `&self` or `&mut self` becomes an operation; other items stay as they are;
//! - arguments are owned, serde types; the handle takes primitives and `Option`s as they are
//!   and `impl Into<Arg>` for everything else (`list.add("x")`);
//! - a method that may park its caller takes `ctx: &mut ApplyContext<..>` and returns
//!   `Outcome<R>`; the caller's result type is `R`;
//! - one method may carry `#[expire]`: `fn(&mut self, waiter: CallId) -> Option<XRet>`,
//!   called when a parked call's timeout fires.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    parse::Parser, parse_macro_input, punctuated::Punctuated, spanned::Spanned, FnArg, GenericArgument,
    Ident, ImplItem, ImplItemFn, ItemImpl, Lit, Meta, PathArguments, ReturnType, Token, Type, Visibility,
};

/// Derives a shared object's operations, dispatch and typed client handle from its methods.
///
/// `#[shared]` or `#[shared(name = "Gate")]` (the registered type name; the type's own name by
/// default) on `impl Type { ... }`.
#[proc_macro_attribute]
pub fn shared(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match Punctuated::<Meta, Token![,]>::parse_terminated.parse(attr) {
        Ok(args) => args,
        Err(error) => return error.to_compile_error().into(),
    };
    let item = parse_macro_input!(item as ItemImpl);
    match expand(args, item) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Registers a cloud thread's runnable type under its `NAME`: put `#[crucial_threads::runnable]`
/// on its `impl Runnable for Type { ... }` block (the same as `crucial_threads::register!(Type)`
/// after it), so that a Lambda handler linked with it can rebuild it by name.
#[proc_macro_attribute]
pub fn runnable(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let message = "#[runnable] takes no arguments: the name is the impl's `const NAME`";
        return syn::Error::new(Span::call_site(), message).to_compile_error().into();
    }
    let item = parse_macro_input!(item as ItemImpl);
    if item.trait_.is_none() {
        let message = "#[runnable] goes on an `impl Runnable for Type` block";
        return syn::Error::new(item.span(), message).to_compile_error().into();
    }
    let self_type = &item.self_ty;
    quote! {
        #item
        ::crucial_threads::inventory::submit! { ::crucial_threads::RunnableEntry::of::<#self_type>() }
    }
    .into()
}

/// One `pub fn` that became an operation.
struct Method {
    name: Ident,
    variant: Ident,
    args: Vec<(Ident, Type)>,
    ret: Type,
    parks: bool,
    read_only: bool,
    docs: Vec<syn::Attribute>,
}

fn expand(args: Punctuated<Meta, Token![,]>, mut item: ItemImpl) -> syn::Result<TokenStream2> {
    if item.trait_.is_some() {
        return Err(syn::Error::new(item.span(), "#[shared] goes on an inherent impl block"));
    }
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "#[shared] types cannot be generic: the server must know the concrete type",
        ));
    }
    let mut self_ty = &*item.self_ty;
    while let Type::Group(group) = self_ty {
        self_ty = &group.elem;
    }
    let self_ident = match self_ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last().unwrap().ident.clone(),
        other => return Err(syn::Error::new(other.span(), "#[shared] needs a named type")),
    };
    let type_name = type_name_from(&args)?.unwrap_or_else(|| self_ident.to_string());

    let mut methods = Vec::new();
    let mut expire = None;
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else { continue };
        if take_expire_attribute(function) {
            expire = Some(function.sig.ident.clone());
            continue;
        }
        if matches!(function.vis, Visibility::Public(_)) && function.sig.receiver().is_some() {
            methods.push(method_from(function)?);
        }
    }
    if methods.is_empty() {
        return Err(syn::Error::new(item.span(), "#[shared] found no `pub fn` with a self receiver"));
    }

    let op = format_ident!("{}Op", self_ident);
    let ret = format_ident!("{}Ret", self_ident);
    let handle = format_ident!("{}Handle", self_ident);
    // What generated code needs, at one path that both the core and the host crate provide.
    let krate = quote!(::crucial_dso::__private);

    let op_variants = methods.iter().map(|m| {
        let variant = &m.variant;
        let fields = m.args.iter().map(|(name, ty)| quote!(#name: #ty));
        let doc = format!("Arguments of `{}`.", m.name);
        quote!(#[doc = #doc] #variant { #(#[allow(missing_docs)] #fields),* })
    });
    let ret_variants = methods.iter().map(|m| {
        let variant = &m.variant;
        let ty = &m.ret;
        let doc = format!("Result of `{}`.", m.name);
        quote!(#[doc = #doc] #variant(#ty))
    });
    let apply_arms = methods.iter().map(|m| {
        let variant = &m.variant;
        let name = &m.name;
        let fields: Vec<_> = m.args.iter().map(|(name, _)| name).collect();
        if m.parks {
            quote!(#op::#variant { #(#fields),* } => self.#name(#(#fields,)* ctx).map(#ret::#variant))
        } else {
            quote!(#op::#variant { #(#fields),* } =>
                #krate::object::Outcome::Done(#ret::#variant(self.#name(#(#fields),*))))
        }
    });
    let method_name_arms = methods.iter().map(|m| {
        let variant = &m.variant;
        let name = m.name.to_string();
        quote!(#op::#variant { .. } => #name)
    });
    let read_only_arms = methods.iter().map(|m| {
        let variant = &m.variant;
        let read_only = m.read_only;
        quote!(#op::#variant { .. } => #read_only)
    });
    let encode_arms = methods.iter().map(|m| {
        let variant = &m.variant;
        let fields: Vec<_> = m.args.iter().map(|(name, _)| name).collect();
        quote!(#op::#variant { #(#fields),* } => #krate::object::encode_args(&(#(#fields,)*)))
    });
    let method_names: Vec<String> = methods.iter().map(|m| m.name.to_string()).collect();
    let decode_arms = methods.iter().map(|m| {
        let variant = &m.variant;
        let name = m.name.to_string();
        let fields: Vec<_> = m.args.iter().map(|(name, _)| name).collect();
        let types: Vec<_> = m.args.iter().map(|(_, ty)| ty).collect();
        quote!(#name => {
            let (#(#fields,)*): (#(#types,)*) = #krate::object::decode_args(#type_name, method, args)?;
            ::core::result::Result::Ok(#op::#variant { #(#fields),* })
        })
    });
    let handle_methods = methods.iter().map(|m| {
        let variant = &m.variant;
        let name = &m.name;
        let ty = &m.ret;
        let docs = &m.docs;
        let params = m.args.iter().map(|(name, ty)| {
            if takes_literals(ty) {
                quote!(#name: #ty)
            } else {
                quote!(#name: impl ::core::convert::Into<#ty>)
            }
        });
        let fields = m.args.iter().map(|(name, _)| quote!(#name: #name.into()));
        quote! {
            #(#docs)*
            pub async fn #name(&self, #(#params),*) -> ::core::result::Result<#ty, #krate::DsoError> {
                match self.object.call(#op::#variant { #(#fields),* }).await? {
                    #ret::#variant(value) => ::core::result::Result::Ok(value),
                    #[allow(unreachable_patterns)]
                    other => ::core::result::Result::Err(#krate::DsoError::MismatchedReply {
                        expected: stringify!(#name),
                        got: ::std::format!("{other:?}"),
                    }),
                }
            }
        }
    });
    let encode_ret_arms = methods.iter().map(|m| {
        let variant = &m.variant;
        quote!(#ret::#variant(value) => #krate::object::encode(value))
    });
    let decode_ret_arms = methods.iter().map(|m| {
        let variant = &m.variant;
        let name = m.name.to_string();
        let ty = &m.ret;
        quote!(#name => #krate::object::decode::<#ty>(bytes).map(#ret::#variant))
    });
    let expire_body = match &expire {
        Some(function) => quote!(self.#function(waiter, ctx)),
        None => quote!({
            let _ = (waiter, ctx);
            ::core::option::Option::None
        }),
    };
    let op_doc = format!("The operations of `{self_ident}`, one per public method.");
    let ret_doc = format!("The results of `{self_ident}`'s operations, one per public method.");
    let handle_doc =
        format!("Typed client handle of a `{self_ident}` held in the DSO: one async method per operation.");

    Ok(quote! {
        #item

        #[doc = #op_doc]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, #krate::serde::Serialize, #krate::serde::Deserialize)]
        #[serde(crate = "::crucial_dso::__private::serde")]
        pub enum #op { #(#op_variants),* }

        #[doc = #ret_doc]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, #krate::serde::Serialize, #krate::serde::Deserialize)]
        #[serde(crate = "::crucial_dso::__private::serde")]
        pub enum #ret { #(#ret_variants),* }

        impl #krate::object::Operation for #op {
            const METHODS: &'static [&'static str] = &[#(#method_names),*];
            fn method(&self) -> &'static str {
                match self { #(#method_name_arms),* }
            }
            fn is_read_only(&self) -> bool {
                match self { #(#read_only_arms),* }
            }
            fn encode_args(&self) -> ::std::vec::Vec<u8> {
                match self { #(#encode_arms),* }
            }
            fn decode(method: &str, args: &[u8]) -> ::core::result::Result<Self, #krate::CallError> {
                match method {
                    #(#decode_arms)*
                    _ => ::core::result::Result::Err(#krate::CallError::UnknownMethod {
                        type_name: #type_name.to_string(),
                        method: method.to_string(),
                    }),
                }
            }
        }

        impl #krate::object::SharedObject for #self_ident {
            const TYPE_NAME: &'static str = #type_name;
            type Op = #op;
            type Ret = #ret;
            type Handle = #handle;

            fn apply(
                &mut self,
                op: #op,
                ctx: &mut #krate::object::ApplyContext<#ret>,
            ) -> #krate::object::Outcome<#ret> {
                let _ = &ctx;
                match op { #(#apply_arms),* }
            }

            fn encode_ret(ret: &#ret) -> ::std::vec::Vec<u8> {
                match ret { #(#encode_ret_arms),* }
            }

            fn decode_ret(method: &str, bytes: &[u8]) -> ::core::result::Result<#ret, ::std::string::String> {
                match method {
                    #(#decode_ret_arms,)*
                    _ => ::core::result::Result::Err(::std::format!("`{}` has no method `{method}`", #type_name)),
                }
            }

            fn expire(
                &mut self,
                waiter: #krate::object::CallId,
                ctx: &mut #krate::object::ApplyContext<#ret>,
            ) -> ::core::option::Option<#ret> {
                #expire_body
            }
        }

        #[doc = #handle_doc]
        #[derive(Clone, Debug)]
        pub struct #handle {
            object: #krate::object::ObjectRef<#self_ident>,
        }

        impl ::core::convert::From<#krate::object::ObjectRef<#self_ident>> for #handle {
            fn from(object: #krate::object::ObjectRef<#self_ident>) -> Self {
                Self { object }
            }
        }

        impl #handle {
            /// The key this handle's object is stored under.
            pub fn key(&self) -> &str {
                self.object.key()
            }

            #(#handle_methods)*
        }
    })
}

fn type_name_from(args: &Punctuated<Meta, Token![,]>) -> syn::Result<Option<String>> {
    let mut name = None;
    for meta in args {
        match meta {
            Meta::NameValue(pair) if pair.path.is_ident("name") && name.is_none() => match &pair.value {
                syn::Expr::Lit(syn::ExprLit { lit: Lit::Str(value), .. }) => name = Some(value.value()),
                other => return Err(syn::Error::new(other.span(), "name must be a string literal")),
            },
            other => return Err(syn::Error::new(other.span(), "expected one `name = \"...\"`")),
        }
    }
    Ok(name)
}

fn take_expire_attribute(function: &mut ImplItemFn) -> bool {
    let before = function.attrs.len();
    function.attrs.retain(|attribute| !attribute.path().is_ident("expire"));
    function.attrs.len() != before
}

fn method_from(function: &ImplItemFn) -> syn::Result<Method> {
    let name = function.sig.ident.clone();
    if function.sig.asyncness.is_some() || !function.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            function.sig.span(),
            "shared object methods are plain, non-generic, synchronous functions",
        ));
    }
    let mut args = Vec::new();
    let mut takes_context = false;
    for input in function.sig.inputs.iter().skip(1) {
        let FnArg::Typed(typed) = input else { continue };
        if let Type::Reference(reference) = &*typed.ty {
            if reference.mutability.is_some() && last_segment_is(&reference.elem, "ApplyContext") {
                takes_context = true;
                continue;
            }
            return Err(syn::Error::new(
                typed.ty.span(),
                "arguments of shared object methods must be owned (they travel over the network)",
            ));
        }
        let syn::Pat::Ident(pattern) = &*typed.pat else {
            return Err(syn::Error::new(typed.pat.span(), "use a plain argument name"));
        };
        args.push((pattern.ident.clone(), (*typed.ty).clone()));
    }
    let declared = match &function.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let (ret, parks) = match outcome_inner(&declared) {
        Some(inner) if takes_context => (inner, true),
        Some(_) => {
            return Err(syn::Error::new(
                declared.span(),
                "a method returning Outcome<R> must take `ctx: &mut ApplyContext<..>`",
            ))
        }
        None if takes_context => {
            return Err(syn::Error::new(
                declared.span(),
                "a method taking ApplyContext must return Outcome<R>",
            ))
        }
        None => (declared, false),
    };
    let read_only = matches!(function.sig.receiver(), Some(receiver) if receiver.mutability.is_none());
    Ok(Method {
        read_only,
        variant: Ident::new(&upper_camel(&name.to_string()), Span::call_site()),
        docs: function.attrs.iter().filter(|a| a.path().is_ident("doc")).cloned().collect(),
        name,
        args,
        ret,
        parks,
    })
}

/// Whether callers pass this type as a literal (`5`, `true`, `None`), which `impl Into<T>` would
/// leave to the integer fallback instead of inferring `T`.
fn takes_literals(ty: &Type) -> bool {
    const LITERAL_TYPES: &[&str] = &[
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32", "f64",
        "bool", "char", "Option",
    ];
    let mut ty = ty;
    while let Type::Group(group) = ty {
        ty = &group.elem;
    }
    LITERAL_TYPES.iter().any(|name| last_segment_is(ty, name))
}

fn last_segment_is(ty: &Type, wanted: &str) -> bool {
    matches!(ty, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == wanted))
}

fn outcome_inner(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    if segment.ident != "Outcome" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else { return None };
    match arguments.args.first()? {
        GenericArgument::Type(inner) => Some(inner.clone()),
        _ => None,
    }
}

fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars).collect::<String>()
        })
        .collect()
}
