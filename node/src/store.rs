//! The profile's blob store, opened as configured: its quota and the disk
//! reserve it keeps free.

use alp_blobstore::store::{Store, StoreError};
use alp_profiles::Profile;
use alp_profiles::config::Config;

/// Opens `profile`'s blob store with the limits of `config`.
pub(crate) fn open(profile: &Profile, config: &Config) -> Result<Store, StoreError> {
    Ok(Store::open(&profile.paths().blobs())?.with_quota(config.blob.store_quota).with_reserve(config.blob.min_free))
}
