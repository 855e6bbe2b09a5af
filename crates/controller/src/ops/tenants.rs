//! Tenant policies, for administrators: whether a tenant's entities may run as root (`runAs: root`). A tenant
//! without a policy record has the default: no.

use fos_api::auth::{TenantPolicy, TenantView};
use fos_store::records::TenantPolicies;

use super::{Caller, OpError};
use crate::Context;

/// Sets `tenant`'s policy.
pub async fn set(ctx: &Context, caller: &Caller, tenant: &str, policy: TenantPolicy) -> Result<TenantView, OpError> {
    caller.check_admin("set tenant policies")?;
    fos_api::validate_name(tenant).map_err(|e| OpError::invalid(format!("tenant `{tenant}`: {e}")))?;
    ctx.records().put::<TenantPolicies>(&tenant.to_string(), &policy, None).await?;
    Ok(TenantView { tenant: tenant.to_string(), policy })
}

/// Every tenant with a policy.
pub async fn list(ctx: &Context, caller: &Caller) -> Result<Vec<TenantView>, OpError> {
    caller.check_admin("list tenant policies")?;
    let (list, _) = ctx.records().list::<TenantPolicies>().await?;
    Ok(list.into_iter().map(|(tenant, v)| TenantView { tenant, policy: v.value }).collect())
}

/// `tenant`'s policy (the default when none was set).
pub async fn policy(ctx: &Context, tenant: &str) -> Result<TenantPolicy, OpError> {
    Ok(ctx.records().get::<TenantPolicies>(&tenant.to_string()).await?.map(|v| v.value).unwrap_or_default())
}
