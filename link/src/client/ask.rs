//! Calling a peer's agent: `agent.ask` (the answer streams back as
//! events) and `agent.cancel`.

use alp_protocol::Verb;
use alp_protocol::envelope::{self, AskEvent, AskRequest, CancelRequest, CancelResponse, Empty};

use super::{Link, RequestError};
use crate::wire::FrameRead;

impl Link {
    /// `agent.ask`: runs a prompt on the peer's agent. `on_event` sees each
    /// streamed event; the result is the last one, [`AskEvent::Done`] or
    /// [`AskEvent::Failed`]. `event_timeout` bounds the wait for each event
    /// (a tool on the peer may run for a while).
    pub async fn ask(
        &self,
        request: &AskRequest,
        event_timeout: std::time::Duration,
        mut on_event: impl FnMut(&AskEvent),
    ) -> Result<AskEvent, RequestError> {
        let (mut send, mut recv) = self.open(Verb::AgentAsk, request).await?;
        let _ = send.finish();
        let _: Empty = self.answer(&mut recv).await?;
        loop {
            let bytes = tokio::time::timeout(event_timeout, recv.read_frame(self.settings.max_frame))
                .await
                .map_err(|_| RequestError::Timeout(event_timeout.as_secs_f64()))??;
            match envelope::from_cbor::<AskEvent>(&bytes)? {
                last @ (AskEvent::Done { .. } | AskEvent::Failed { .. }) => return Ok(last),
                ev => on_event(&ev),
            }
        }
    }

    /// `agent.cancel`: stops this caller's ask `ask_id`; false if it was
    /// not running.
    pub async fn cancel_ask(&self, ask_id: [u8; 16]) -> Result<bool, RequestError> {
        let r: CancelResponse = self.request(Verb::AgentCancel, &CancelRequest { ask_id: ask_id.to_vec() }).await?;
        Ok(r.cancelled)
    }
}
