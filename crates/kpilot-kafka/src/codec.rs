//! Kafka wire framing on top of `kafka-protocol`'s message codecs: a request frame is a 4-byte
//! big-endian length, a request header (API key, version, correlation id, client id) and the
//! body; a response frame is a length, a response header (correlation id) and the body.
//! Pure ("sans-I/O"): works on byte buffers only.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Largest response frame we accept (Kafka's default `socket.request.max.bytes` is 100 MiB).
/// A larger length almost always means the peer is not speaking Kafka on this port, e.g. a TLS
/// listener answering a plaintext client.
pub const MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Why bytes could not be turned into a frame or message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Encoding a request failed (a value does not fit the chosen version).
    #[error("cannot encode {api:?} v{version} request: {message}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// What went wrong.
        message: String,
    },
    /// Decoding a response failed.
    #[error("cannot decode {api:?} v{version} response: {message}")]
    Decode {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// What went wrong.
        message: String,
    },
    /// The peer sent TLS records: it is a TLS listener and we spoke plaintext.
    #[error(
        "the broker answered with TLS, so this listener expects TLS; set security.protocol=SSL or SASL_SSL (and a trust store)"
    )]
    PeerSpeaksTls,
    /// The frame length is impossible for a Kafka response.
    #[error(
        "the peer sent a frame of {length} bytes, which is not a Kafka response; is this a Kafka listener with the right security.protocol?"
    )]
    BadFrameLength {
        /// The length read from the wire.
        length: i64,
    },
}

/// Encodes one request frame (length prefix included).
pub fn encode_request<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &R,
) -> Result<BytesMut, CodecError> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0); // length placeholder
    header
        .encode(&mut buf, api.request_header_version(version))
        .map_err(|e| CodecError::Encode {
            api,
            version,
            message: format!("header: {e}"),
        })?;
    body.encode(&mut buf, version)
        .map_err(|e| CodecError::Encode {
            api,
            version,
            message: e.to_string(),
        })?;
    let length = i32::try_from(buf.len() - 4).map_err(|_| CodecError::Encode {
        api,
        version,
        message: "request larger than 2 GiB".to_string(),
    })?;
    buf[..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf)
}

/// Reads the length prefix of a response frame and checks it is plausible.
pub fn frame_length(prefix: [u8; 4]) -> Result<usize, CodecError> {
    // A TLS record starts with content type 0x14-0x17 and protocol version 0x03 0x0?.
    if (0x14..=0x17).contains(&prefix[0]) && prefix[1] == 0x03 && prefix[2] <= 0x04 {
        return Err(CodecError::PeerSpeaksTls);
    }
    let length = i32::from_be_bytes(prefix);
    match usize::try_from(length) {
        Ok(n) if (4..=MAX_FRAME_BYTES).contains(&n) => Ok(n),
        _ => Err(CodecError::BadFrameLength {
            length: i64::from(length),
        }),
    }
}

/// The correlation id at the start of a response frame (after the length prefix).
pub fn correlation_id(frame: &[u8]) -> Option<i32> {
    let bytes: [u8; 4] = frame.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// Splits a response frame (without length prefix) into its header and body bytes.
pub fn split_response(
    api: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<(ResponseHeader, Bytes), CodecError> {
    let mut buf = frame;
    let header =
        ResponseHeader::decode(&mut buf, api.response_header_version(version)).map_err(|e| {
            CodecError::Decode {
                api,
                version,
                message: format!("header: {e}"),
            }
        })?;
    Ok((header, buf))
}

/// Decodes a response body.
pub fn decode_body<R: Decodable>(
    api: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<R, CodecError> {
    let decoded = R::decode(&mut body, version).map_err(|e| CodecError::Decode {
        api,
        version,
        message: e.to_string(),
    })?;
    if body.has_remaining() {
        tracing::debug!(
            ?api,
            version,
            trailing = body.remaining(),
            "response has trailing bytes"
        );
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    #[test]
    fn request_frame_has_length_and_header() {
        let frame = encode_request(
            ApiKey::ApiVersions,
            3,
            7,
            "kpilot",
            &ApiVersionsRequest::default(),
        )
        .unwrap();
        let length = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(length, frame.len() - 4);
        let mut rest = Bytes::copy_from_slice(&frame[4..]);
        let header =
            kafka_protocol::protocol::decode_request_header_from_buffer(&mut rest).unwrap();
        assert_eq!(header.request_api_key, ApiKey::ApiVersions as i16);
        assert_eq!(header.request_api_version, 3);
        assert_eq!(header.correlation_id, 7);
        assert_eq!(header.client_id.as_deref(), Some("kpilot"));
        let body = ApiVersionsRequest::decode(&mut rest, 3).unwrap();
        assert_eq!(body, ApiVersionsRequest::default());
    }

    #[test]
    fn response_round_trip() {
        use kafka_protocol::messages::MetadataResponse;
        let version = 12;
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(42)
            .encode(&mut buf, ApiKey::Metadata.response_header_version(version))
            .unwrap();
        let response =
            MetadataResponse::default().with_cluster_id(Some(StrBytes::from_static_str("c1")));
        response.encode(&mut buf, version).unwrap();
        let frame = buf.freeze();
        assert_eq!(correlation_id(&frame), Some(42));
        let (header, body) = split_response(ApiKey::Metadata, version, frame).unwrap();
        assert_eq!(header.correlation_id, 42);
        let decoded: MetadataResponse = decode_body(ApiKey::Metadata, version, body).unwrap();
        assert_eq!(decoded.cluster_id.as_deref(), Some("c1"));
        let _ = MetadataRequest::default();
    }

    #[test]
    fn tls_bytes_and_garbage_lengths_are_recognised() {
        // A TLS alert record: content type 21, version 3.3.
        assert_eq!(
            frame_length([0x15, 0x03, 0x03, 0x00]),
            Err(CodecError::PeerSpeaksTls)
        );
        assert_eq!(
            frame_length([0x16, 0x03, 0x01, 0x02]),
            Err(CodecError::PeerSpeaksTls)
        );
        assert!(matches!(
            frame_length([0x48, 0x54, 0x54, 0x50]),
            Err(CodecError::BadFrameLength { .. })
        ));
        assert!(matches!(
            frame_length([0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::BadFrameLength { length: -1 })
        ));
        assert_eq!(frame_length([0, 0, 0, 10]), Ok(10));
    }

    #[test]
    fn truncated_response_is_a_decode_error() {
        let err = decode_body::<kafka_protocol::messages::MetadataResponse>(
            ApiKey::Metadata,
            12,
            Bytes::from_static(&[0, 0]),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CodecError::Decode {
                api: ApiKey::Metadata,
                version: 12,
                ..
            }
        ));
    }
}
