//! GGUF model files: arbitrary bytes never panic the reader, the tokenizer
//! or the model builder, and a model that builds can encode and decode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = alp_llm::gguf::Gguf::parse(data) else { return };
    if let Ok(tok) = alp_llm::tokenizer::Tokenizer::from_gguf(&g) {
        let ids = tok.encode("Hello, world! 123 <|im_start|>");
        let _ = tok.decode(&ids);
    }
    if let Ok(model) = alp_llm::Model::from_bytes(data, "fuzz") {
        let ids = model.chat.render(&model.tokenizer, &[(alp_llm::Role::User, "hi")]);
        let mut ctx = model.context();
        let _ = model.forward(&mut ctx, &ids);
    }
});
