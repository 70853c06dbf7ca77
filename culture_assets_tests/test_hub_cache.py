from transformers import AutoModelForCausalLM, AutoTokenizer
from culture_assets_tests.hub_cache import DEFAULT_HUB_NAME

def test_offline_hub_resolves_the_default_name(offline_hub):
    tok = AutoTokenizer.from_pretrained(DEFAULT_HUB_NAME)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_HUB_NAME)
    assert tok.chat_template and model.config.hidden_size == 64
